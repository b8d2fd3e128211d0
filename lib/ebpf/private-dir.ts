/**
 * Directories and files that only the process's user can write, for data the loader feeds to
 * the kernel (minimal kernel BTF used for CO-RE relocations). A directory or file planted by
 * another local user, made group- or world-writable, or replaced by a symlink is never used.
 * @module
 */
import { lstat, mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BpfError } from './errors.js';

/** The effective uid (0 where the platform has none). */
function euid(): number {
  return process.geteuid?.() ?? 0;
}

/**
 * Why `path` is not a private directory or file of this user, or undefined when it is: it must
 * not be a symlink (lstat), must be a directory (or, with `file`, a regular file), owned by
 * the effective uid, and not writable by group or others.
 */
export async function notPrivate(path: string, file = false): Promise<string | undefined> {
  let st;
  try {
    st = await lstat(path);
  } catch (e) {
    return `${path}: ${(e as Error).message}`;
  }
  if (st.isSymbolicLink()) return `${path} is a symlink`;
  if (file ? !st.isFile() : !st.isDirectory()) return `${path} is not a ${file ? 'regular file' : 'directory'}`;
  if (st.uid !== euid()) return `${path} is owned by uid ${st.uid}, not ${euid()}`;
  if (st.mode & 0o022) return `${path} is writable by group or others (mode ${(st.mode & 0o7777).toString(8)})`;
  return undefined;
}

/** Makes `path` (mode 0700) if missing, then verifies that it is private; throws otherwise. */
async function privateSubdir(path: string): Promise<string> {
  await mkdir(path, { mode: 0o700 }).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'EEXIST') throw e;
  });
  const why = await notPrivate(path);
  if (why) throw new BpfError('ERR_BPF_SYSTEM', `not a private directory: ${why}`);
  return path;
}

const fresh = new Map<string, Promise<string>>();

/**
 * A directory `<base>/<name>` that only this user can write, where `<base>` is
 * `$XDG_RUNTIME_DIR/smoothtask` when `XDG_RUNTIME_DIR` is set and private to this user, else
 * `$TMPDIR/smoothtask-<euid>`. Every component from `<base>` down is created with mode 0700
 * and verified (lstat: no symlink, owner = euid, no group/other write). When one fails the
 * check (for instance another user created it first), a fresh `mkdtemp` directory is used for
 * the life of the process instead: what is in it is not shared with later processes, but
 * nothing planted is ever read.
 */
export async function privateDir(name: string): Promise<string> {
  const xdg = process.env.XDG_RUNTIME_DIR;
  const bases: string[] = [];
  if (xdg && xdg.startsWith('/') && !(await notPrivate(xdg))) bases.push(join(xdg, 'smoothtask'));
  bases.push(join(tmpdir(), `smoothtask-${euid()}`));
  for (const base of bases) {
    try {
      await privateSubdir(base);
      return await privateSubdir(join(base, name));
    } catch {
      /* planted or unusable: next */
    }
  }
  const key = `${tmpdir()}\0${name}`;
  let p = fresh.get(key);
  if (!p) {
    p = (async () => {
      const dir = await mkdtemp(join(tmpdir(), `smoothtask-${euid()}-${name}-`));
      const why = await notPrivate(dir);
      if (why) throw new BpfError('ERR_BPF_SYSTEM', `cannot make a private directory: ${why}`);
      return dir;
    })();
    fresh.set(key, p);
    p.catch(() => fresh.delete(key));
  }
  return p;
}
