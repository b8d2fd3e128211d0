/**
 * Small helpers for reading sysfs attribute files: each read is one short file, errors (a
 * sensor that returns EIO, an attribute the driver lacks) become `null`, never exceptions;
 * directory listings can be reused through a {@link SysfsLayoutCache}.
 * @module
 */
import { readdir, readFile, realpath } from 'node:fs/promises';

/** Reads a sysfs attribute, trimmed; null when it does not exist or cannot be read. */
export async function readAttr(path: string): Promise<string | null> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return null;
  }
}

/** Reads an integer attribute; null when missing, unreadable or not a number. */
export async function readInt(path: string): Promise<number | null> {
  const s = await readAttr(path);
  if (s === null || s === '') return null;
  const n = Number(s);
  return Number.isFinite(n) ? n : null;
}

async function listFresh(path: string): Promise<string[]> {
  try {
    const names = await readdir(path);
    return names.sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  } catch {
    return [];
  }
}

async function resolveFresh(path: string): Promise<string | null> {
  try {
    return await realpath(path);
  } catch {
    return null;
  }
}

/**
 * Directory listings and resolved links of a sysfs tree, each kept for `ttlMs`. Which sensors
 * exist changes on hotplug only, while their values change every read: a reader that listed
 * every directory on every read spent most of its time there (on a host without sensors, all
 * of it, on readdir calls that failed the same way each second). Values are never cached.
 */
export class SysfsLayoutCache {
  readonly #entries = new Map<string, { at: number; value: Promise<unknown> }>();

  /**
   * A cache whose listings live `ttlMs`.
   * @param ttlMs how long a listing is reused (default 30 s).
   */
  constructor(readonly ttlMs = 30_000) {}

  #swept = 0;

  #get<T>(key: string, load: () => Promise<T>): Promise<T> {
    const now = Date.now();
    if (now - this.#swept >= this.ttlMs) {
      // Paths that stopped being asked for (an unplugged sensor's directory) do not pile up.
      for (const [k, e] of this.#entries) if (now - e.at >= this.ttlMs) this.#entries.delete(k);
      this.#swept = now;
    }
    const e = this.#entries.get(key);
    if (e && now - e.at < this.ttlMs) return e.value as Promise<T>;
    const value = load();
    this.#entries.set(key, { at: now, value });
    return value;
  }

  /** Entries of a directory, sorted naturally (`x2` before `x10`); [] when it does not exist. */
  list(path: string): Promise<string[]> {
    return this.#get(`d:${path}`, () => listFresh(path));
  }

  /** The resolved path of a link, null when it does not resolve. */
  realpath(path: string): Promise<string | null> {
    return this.#get(`r:${path}`, () => resolveFresh(path));
  }
}

/**
 * Entries of a directory, sorted naturally (`x2` before `x10`); [] when it does not exist.
 * Through `layout` when given (a listing up to its TTL old).
 */
export function listDir(path: string, layout?: SysfsLayoutCache): Promise<string[]> {
  return layout ? layout.list(path) : listFresh(path);
}

/** The resolved path of a link (null when it does not resolve), through `layout` when given. */
export function resolveLink(path: string, layout?: SysfsLayoutCache): Promise<string | null> {
  return layout ? layout.realpath(path) : resolveFresh(path);
}
