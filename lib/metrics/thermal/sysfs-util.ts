/**
 * Small helpers for reading sysfs attribute files: each read is one short file, errors (a
 * sensor that returns EIO, an attribute the driver lacks) become `null`, never exceptions.
 * @internal
 */
import { readdir, readFile } from 'node:fs/promises';

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

/** Entries of a directory, sorted naturally (`x2` before `x10`); [] when it does not exist. */
export async function listDir(path: string): Promise<string[]> {
  try {
    const names = await readdir(path);
    return names.sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  } catch {
    return [];
  }
}
