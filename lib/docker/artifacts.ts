import { createWriteStream } from 'node:fs';
import { lstat, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import yazl from 'yazl';
import { OutputTooLargeError } from './errors.js';

/** What {@link zipDirectory} produced. */
export interface ArchiveInfo {
  /** Path of the ZIP file. */
  path: string;
  /** Number of regular files archived. */
  files: number;
  /** Sum of the archived files' sizes (uncompressed). */
  bytes: number;
  /** Size of the ZIP file. */
  zipBytes: number;
  /** Symlinks and special files that were skipped (never followed: they could point outside). */
  skipped: string[];
}

/** Options of {@link zipDirectory}. */
export interface ZipOptions {
  /** Cap on the uncompressed total; over it the archive is not written. Default 1 GiB. */
  maxBytes?: number;
  /** Abort the archiving; the partial ZIP is removed. */
  signal?: AbortSignal;
}

async function walk(root: string, dir: string, out: { files: { abs: string; rel: string; size: number }[]; skipped: string[] }): Promise<void> {
  for (const ent of await readdir(dir, { withFileTypes: true })) {
    const abs = join(dir, ent.name);
    const rel = relative(root, abs).split(sep).join('/');
    // lstat, not stat: a container can leave a symlink to a host path in its outputs.
    const st = await lstat(abs);
    if (st.isDirectory()) await walk(root, abs, out);
    else if (st.isFile()) out.files.push({ abs, rel, size: st.size });
    else out.skipped.push(rel);
  }
}

/**
 * Zips a directory into `dest` as a stream (files are read one at a time, never held in
 * memory). Returns `undefined` when the directory is missing or holds no regular file.
 *
 * @throws {@link OutputTooLargeError} when the files add up to more than `maxBytes`; nothing is
 *   left at `dest` then.
 */
export async function zipDirectory(src: string, dest: string, options: ZipOptions = {}): Promise<ArchiveInfo | undefined> {
  const maxBytes = options.maxBytes ?? 1024 ** 3;
  try {
    if (!(await stat(src)).isDirectory()) return undefined;
  } catch {
    return undefined;
  }
  const found = { files: [] as { abs: string; rel: string; size: number }[], skipped: [] as string[] };
  await walk(src, src, found);
  if (found.files.length === 0) return undefined;
  let total = 0;
  for (const f of found.files) {
    total += f.size;
    if (total > maxBytes) throw new OutputTooLargeError(maxBytes, total);
  }
  await mkdir(dirname(dest), { recursive: true });
  const zip = new yazl.ZipFile();
  for (const f of found.files) zip.addFile(f.abs, f.rel);
  zip.end();
  try {
    await pipeline(zip.outputStream, createWriteStream(dest), options.signal ? { signal: options.signal } : {});
  } catch (e) {
    await rm(dest, { force: true });
    throw e;
  }
  return { path: dest, files: found.files.length, bytes: total, zipBytes: (await stat(dest)).size, skipped: found.skipped };
}
