/**
 * Streaming ZIP of a folder inside a workspace: the one archiver of the workspace doors (the
 * outputs archive written by the executors, folder downloads over HTTP).
 * @module
 */
import { Readable } from 'node:stream';
import yazl from 'yazl';
import { SmoothtaskError } from '../errors/index.js';
import { splitRelativePath } from './policy.js';
import type { WalkFile, WorkspaceRoot } from './root.js';

/** Thrown when the files of a folder add up to more than an archive may hold. */
export class ArchiveTooLargeError extends SmoothtaskError {
  /** The cap, in bytes (uncompressed). */
  readonly maxBytes: number;
  /** The bytes found (the walk stops counting once over the cap). */
  readonly bytes: number;
  /**
   * Creates the error.
   * @param maxBytes the cap
   * @param bytes the bytes found
   */
  constructor(maxBytes: number, bytes: number) {
    super('ERR_ARCHIVE_TOO_LARGE', `The folder holds more than ${maxBytes} bytes (at least ${bytes}): not archived`);
    this.maxBytes = maxBytes;
    this.bytes = bytes;
  }
}

/** A folder's ZIP, ready to stream. */
export interface FolderZip {
  /** The ZIP bytes; each file is opened (without following anything) when the archiver reaches it. */
  stream: Readable;
  /** Regular files archived. */
  files: number;
  /** Their uncompressed total. */
  bytes: number;
  /** Escaped names of what was not archived: links (never followed), FIFOs, sockets, devices, folders too deep. */
  skipped: string[];
}

/**
 * Walks the folder `rel` of `root` (never following a link, at any level) and returns its ZIP
 * as a stream, or `undefined` when it holds no regular file. Entry names are escaped by
 * `entryName`; at most the walked size of each file is read, so a file that grows meanwhile
 * cannot push the total over `maxBytes`. The caller keeps `root` open until the stream ends.
 *
 * @throws {@link ArchiveTooLargeError} when the files add up to more than `maxBytes`.
 * @throws `UnsafePathError` when `rel` is refused, a link or not a folder; `WorkspaceError`
 *   (`sysCode` `ENOENT`) when it is missing.
 */
export async function zipFolder(root: WorkspaceRoot, rel: string, options: { maxBytes?: number; what?: string } = {}): Promise<FolderZip | undefined> {
  const maxBytes = options.maxBytes ?? Number.MAX_SAFE_INTEGER;
  const what = options.what ?? 'folder';
  const files: WalkFile[] = [];
  const skipped: string[] = [];
  let total = 0;
  for await (const e of root.walk(rel, { what })) {
    if (e.kind !== 'file') {
      skipped.push(e.name);
      continue;
    }
    files.push(e);
    total += e.size;
    if (total > maxBytes) throw new ArchiveTooLargeError(maxBytes, total);
  }
  if (files.length === 0) return undefined;
  const top = splitRelativePath(rel, what).map((p) => Buffer.from(p, 'utf8'));
  // The archiver starts only when the stream is first read: a file that fails to open (a task
  // renamed it meanwhile) is then an error of a stream somebody consumes, never an 'error'
  // event with no listener between this return and the caller's pipe (that killed the process).
  async function* archive(): AsyncGenerator<Buffer> {
    const zip = new yazl.ZipFile();
    const open = new Set<Readable>();
    const out = zip.outputStream as Readable;
    // An archiver error (a file vanished, a read failed) ends the stream with that error.
    zip.on('error', (err: Error) => out.destroy(err));
    for (const f of files) {
      zip.addReadStreamLazy(f.name, { size: f.size, mtime: f.mtime, mode: f.mode }, (cb) => {
        root.openFile([...top, ...f.parts], 'file').then(
          ({ handle }) => {
            if (f.size === 0) {
              void handle.close();
              cb(null, Readable.from([]));
              return;
            }
            const rs = handle.createReadStream({ start: 0, end: f.size - 1 });
            open.add(rs);
            rs.once('close', () => open.delete(rs));
            cb(null, rs);
          },
          (err: unknown) => cb(err, Readable.from([])),
        );
      });
    }
    zip.end();
    try {
      for await (const chunk of out) yield chunk as Buffer;
    } finally {
      // Ended, failed or abandoned by the consumer: no file stays open.
      out.destroy();
      for (const rs of open) rs.destroy();
    }
  }
  const stream = Readable.from(archive(), { objectMode: false });
  return { stream, files: files.length, bytes: total, skipped };
}
