// The workspace path policy on its own, against the real file system: the traversal corpus
// refused by every method, links to /etc and to a sibling workspace never followed (at any
// level, the root's own subfolders and the root itself included), FIFOs never opened (a writer
// waiting on one stays blocked), devices and sockets skipped, a 2 GiB sparse file streamed,
// a task swapping a folder for a link during the walk (TOCTOU), atomic file creation, and the
// entry-name escaping (a property test: reversible, never unsafe).
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import yauzl from 'yauzl';
import { readZip as zipEntries } from '../docker/helpers.js';
import { OutputTooLargeError, zipDirectory } from '../../lib/docker/index.js';
import { SmoothtaskError } from '../../lib/errors/index.js';
import {
  entryName,
  escapeEntryComponent,
  isSafeComponent,
  splitRelativePath,
  unescapeEntryComponent,
  UnsafePathError,
  WorkspaceError,
  WorkspaceRoot,
  type WalkEntry,
} from '../../lib/workspace/index.js';

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function temp(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `smoothtask-ws-${prefix}-`));
  cleanups.push(() => rm(dir, { recursive: true, force: true, maxRetries: 5 }));
  return dir;
}

/** SIGKILL a detached child's whole process group (the shell and any `mv` it is running) and wait for the shell. */
async function killGroup(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
  await exited;
}

async function collect(it: AsyncIterable<WalkEntry>): Promise<{ files: Map<string, number>; skipped: Map<string, string> }> {
  const files = new Map<string, number>();
  const skipped = new Map<string, string>();
  for await (const e of it) {
    if (e.kind === 'file') files.set(e.name, e.size);
    else skipped.set(e.name, e.why);
  }
  return { files, skipped };
}

async function refusal(p: Promise<unknown>): Promise<UnsafePathError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e, 'expected a refusal').toBeInstanceOf(UnsafePathError);
  expect(e).toBeInstanceOf(SmoothtaskError);
  return e as UnsafePathError;
}

const CORPUS: [string, string][] = [
  ['../', 'traversal'],
  ['..', 'traversal'],
  ['a/../../b', 'traversal'],
  ['a/../b', 'traversal'],
  ['out/..', 'traversal'],
  ['/etc/passwd', 'absolute'],
  ['/', 'absolute'],
  ['a\0b', 'nul'],
  ['\0', 'nul'],
  ['a\\b', 'backslash'],
  ['..\\..\\etc', 'backslash'],
  ['C:x', 'drive-letter'],
  ['c:/x', 'drive-letter'],
  ['z:', 'drive-letter'],
  [`a/${'x'.repeat(256)}`, 'too-long'],
];

describe('splitRelativePath and isSafeComponent', () => {
  it.each(CORPUS)('refuses %j (%s)', (p, reason) => {
    let err: unknown;
    try {
      splitRelativePath(p, 'test path');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UnsafePathError);
    expect((err as UnsafePathError).reason).toBe(reason);
    expect((err as UnsafePathError).code).toBe('ERR_UNSAFE_PATH');
    expect((err as Error).message).toContain('test path');
  });

  it('accepts plain relative paths and drops empty and `.` components', () => {
    expect(splitRelativePath('out')).toEqual(['out']);
    expect(splitRelativePath('./a//b/./c/')).toEqual(['a', 'b', 'c']);
    expect(splitRelativePath('')).toEqual([]);
    expect(splitRelativePath('.')).toEqual([]);
    expect(splitRelativePath('...')).toEqual(['...']);
    expect(splitRelativePath('ab:c/d:e')).toEqual(['ab:c', 'd:e']);
    expect(splitRelativePath('%2e%2e/x')).toEqual(['%2e%2e', 'x']);
  });

  it('says which single components are safe', () => {
    for (const ok of ['a', 'task-1', '...', 'x'.repeat(255)]) expect(isSafeComponent(ok), ok).toBe(true);
    for (const bad of ['', '.', '..', 'a/b', '/', 'a\0', 'a\\b', 'x'.repeat(256)]) expect(isSafeComponent(bad), JSON.stringify(bad)).toBe(false);
  });
});

describe('entry names', () => {
  it.each([
    ['plain.txt', 'plain.txt'],
    ['a\\b', 'a%5Cb'],
    ['C:x', 'C%3Ax'],
    ['c:', 'c%3A'],
    ['1:x', '1:x'],
    ['ab:c', 'ab:c'],
    ['new\nline', 'new%0Aline'],
    ['\r\t\x7f\x85', '%0D%09%7F%C2%85'],
    ['rtl\u202Etxt.exe', 'rtl%E2%80%AEtxt.exe'],
    ['\u2066\u2067\u2068\u2069\u200e\u200f\u061c\u2028\u2029', '%E2%81%A6%E2%81%A7%E2%81%A8%E2%81%A9%E2%80%8E%E2%80%8F%D8%9C%E2%80%A8%E2%80%A9'],
    ['100%', '100%25'],
    ['%41', '%2541'],
    ['ünï ✓', 'ünï ✓'],
  ])('escapes %j as %j', (name, want) => {
    expect(escapeEntryComponent(Buffer.from(name, 'utf8'))).toBe(want);
    expect(unescapeEntryComponent(want).toString('utf8')).toBe(name);
  });

  it('escapes every non-ASCII byte of a name that is not UTF-8', () => {
    expect(escapeEntryComponent(Buffer.from([0x62, 0xff, 0x25, 0xc3, 0x0a]))).toBe('b%FF%25%C3%0A');
    expect(entryName([Buffer.from('D:'), Buffer.from('x\\y')])).toBe('D%3A/x%5Cy');
  });

  it('is reversible and never yields a separator, control, bidi control or drive letter (property)', () => {
    const unsafe = /[\\/\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/u;
    const name = fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 40 }).filter((b) => !b.includes(0x2f) && !b.includes(0)),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }).map((s) => Buffer.from(s.replace(/[/\0]/g, 'x'), 'utf8')),
    );
    fc.assert(
      fc.property(name, name, (a, b) => {
        const ea = escapeEntryComponent(a);
        expect(unescapeEntryComponent(ea).equals(Buffer.from(a))).toBe(true);
        expect(ea).not.toMatch(unsafe);
        expect(ea).not.toMatch(/^[A-Za-z]:/);
        if (!Buffer.from(a).equals(Buffer.from(b))) expect(escapeEntryComponent(b)).not.toBe(ea);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('WorkspaceRoot', () => {
  let base: string;
  let rootDir: string;
  let sibling: string;
  let outsideDir: string;
  let root: WorkspaceRoot;

  beforeAll(async () => {
    base = await temp('root');
    rootDir = join(base, 'a/work');
    sibling = join(base, 'b/work');
    outsideDir = join(base, 'outside');
    await mkdir(join(rootDir, 'out/sub'), { recursive: true });
    await mkdir(join(sibling, 'out'), { recursive: true });
    await mkdir(outsideDir);
    await writeFile(join(rootDir, 'out/a.txt'), 'inside');
    await writeFile(join(rootDir, 'out/sub/d.txt'), 'deep');
    await writeFile(join(sibling, 'out/secret.txt'), 'sibling secret');
    await writeFile(join(outsideDir, 'f.txt'), 'outside');
    await chmod(outsideDir, 0o700);
    await symlink('/etc', join(rootDir, 'out/etc'));
    await symlink('/etc/passwd', join(rootDir, 'out/passwd'));
    await symlink(sibling, join(rootDir, 'out/sib'));
    await symlink('../../../b/work/out', join(rootDir, 'out/sub/sibrel'));
    await symlink('/etc', join(rootDir, 'etcdir'));
    root = await WorkspaceRoot.open(rootDir);
    cleanups.push(() => root.close());
  });

  it.each(CORPUS)('every method refuses %j before touching the disk', async (p, reason) => {
    for (const op of [
      () => root.openFile(p),
      () => root.openDir(p),
      () => root.ensureDir(p, { mode: 0o777 }),
      () => root.list(p),
      () => root.createFile(p),
      async () => {
        for await (const _ of root.walk(p)) void _;
      },
    ]) {
      expect((await refusal(op())).reason).toBe(reason);
    }
  });

  it('never follows links to /etc or to a sibling workspace, at any level', async () => {
    const { files, skipped } = await collect(root.walk('out'));
    expect([...files.keys()].sort()).toEqual(['a.txt', 'sub/d.txt']);
    expect(Object.fromEntries(skipped)).toEqual({ etc: 'symlink', passwd: 'symlink', sib: 'symlink', 'sub/sibrel': 'symlink' });
    for (const p of ['out/etc/passwd', 'out/passwd', 'out/sib/out/secret.txt', 'out/sub/sibrel/secret.txt', 'etcdir/passwd', 'etcdir/shadow']) {
      expect((await refusal(root.openFile(p))).reason, p).toBe('symlink');
    }
    const e = await refusal(root.openFile('out/sib/out/secret.txt'));
    expect(e.at).toBe('out/sib');
    expect(e.message).toMatch(/"out\/sib" is a symbolic link/);
    const listed = await root.list('out');
    expect(listed.find((x) => x.name.toString() === 'etc')?.kind).toBe('symlink');
    expect(listed.find((x) => x.name.toString() === 'a.txt')).toMatchObject({ kind: 'file', size: 6 });
    const f = await root.openFile('out/sub/d.txt');
    expect((await f.handle.readFile()).toString()).toBe('deep');
    await f.handle.close();
  });

  it('refuses a symlinked root subfolder and a symlinked root; creates and chmods nothing through a link', async () => {
    expect((await refusal(collect(root.walk('etcdir')))).reason).toBe('symlink');
    await symlink(outsideDir, join(rootDir, 'planted'));
    const e = await refusal(root.ensureDir('planted/x', { mode: 0o777 }));
    expect(e.reason).toBe('symlink');
    expect((await stat(outsideDir)).mode & 0o7777).toBe(0o700);
    expect(await readdir(outsideDir)).toEqual(['f.txt']);
    // With replace, the link itself goes (its target stays as it was) and a real folder takes its place.
    await root.ensureDir('planted/x', { mode: 0o777, replace: true });
    expect((await lstat(join(rootDir, 'planted'))).isDirectory()).toBe(true);
    expect((await stat(join(rootDir, 'planted/x'))).mode & 0o7777).toBe(0o777);
    expect((await stat(outsideDir)).mode & 0o7777).toBe(0o700);
    expect(await readdir(outsideDir)).toEqual(['f.txt']);
    // A file or FIFO where a folder should be is refused too (or replaced).
    await writeFile(join(rootDir, 'afile'), 'x');
    expect((await refusal(root.ensureDir('afile/y'))).reason).toBe('not-directory');
    // The root itself may not be a link.
    await symlink(rootDir, join(base, 'rootlink'));
    expect((await refusal(WorkspaceRoot.open(join(base, 'rootlink')))).reason).toBe('symlink');
    // A missing root is a WorkspaceError with the OS code.
    const missing = await WorkspaceRoot.open(join(base, 'nope')).catch((x: unknown) => x);
    expect(missing).toBeInstanceOf(WorkspaceError);
    expect((missing as WorkspaceError).sysCode).toBe('ENOENT');
  });

  it('never opens a FIFO: a writer waiting on it stays blocked through walk, list and openFile', async () => {
    const dir = join(rootDir, 'fifo-dir');
    await mkdir(dir);
    execFileSync('mkfifo', [join(dir, 'pipe')]);
    // The writer's open(2) returns only once a reader opens the FIFO.
    const writer: ChildProcess = spawn('sh', ['-c', `echo x > '${join(dir, 'pipe')}'; echo opened`], { stdio: ['ignore', 'pipe', 'inherit'] });
    cleanups.push(async () => void writer.kill('SIGKILL'));
    let out = '';
    writer.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    const { files, skipped } = await collect(root.walk('fifo-dir'));
    expect(files.size).toBe(0);
    expect(skipped.get('pipe')).toBe('special');
    expect((await root.list('fifo-dir'))[0]?.kind).toBe('special');
    expect((await refusal(root.openFile('fifo-dir/pipe'))).reason).toBe('not-regular-file');
    expect(Date.now() - t0).toBeLessThan(30_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(out).toBe('');
    expect(writer.exitCode).toBeNull();
    writer.kill('SIGKILL');
  });

  it('skips device nodes and sockets without opening them', async () => {
    const dir = join(rootDir, 'dev-dir');
    await mkdir(dir);
    let devices = true;
    try {
      execFileSync('mknod', [join(dir, 'zero'), 'c', '1', '5']);
      execFileSync('mknod', [join(dir, 'loop'), 'b', '7', '0']);
    } catch {
      devices = false; // Not root: no device nodes to test with.
    }
    const server = createServer();
    server.listen(join(dir, 'sock'));
    await once(server, 'listening');
    cleanups.push(() => new Promise((r) => server.close(() => r())));
    await writeFile(join(dir, 'real.txt'), 'r');
    const { files, skipped } = await collect(root.walk('dev-dir'));
    expect([...files.keys()]).toEqual(['real.txt']);
    expect(skipped.get('sock')).toBe('special');
    if (devices) {
      expect(skipped.get('zero')).toBe('special');
      expect(skipped.get('loop')).toBe('special');
      expect((await refusal(root.openFile('dev-dir/zero'))).reason).toBe('not-regular-file');
    }
    expect((await refusal(root.openFile('dev-dir/sock'))).reason).toBe('not-regular-file');
  });

  it('stops descending at maxDepth and reports what it skipped', async () => {
    await mkdir(join(rootDir, 'deep/1/2/3/4'), { recursive: true });
    await writeFile(join(rootDir, 'deep/1/2/3/4/x'), 'x');
    await writeFile(join(rootDir, 'deep/1/y'), 'y');
    const { files, skipped } = await collect(root.walk('deep', { maxDepth: 3 }));
    expect([...files.keys()]).toEqual(['1/y']);
    expect(skipped.get('1/2/3')).toBe('too-deep');
  });

  it('creates a file atomically without writing through a link planted at its name', async () => {
    await mkdir(join(rootDir, 'up'));
    await symlink(join(outsideDir, 'f.txt'), join(rootDir, 'up/target.txt'));
    const nf = await root.createFile('up/target.txt');
    await nf.handle.writeFile('uploaded');
    expect((await readdir(join(rootDir, 'up'))).length).toBe(2); // the link and the temporary file
    await nf.commit();
    expect(await readFile(join(outsideDir, 'f.txt'), 'utf8')).toBe('outside');
    expect((await lstat(join(rootDir, 'up/target.txt'))).isFile()).toBe(true);
    expect(await readFile(join(rootDir, 'up/target.txt'), 'utf8')).toBe('uploaded');
    const aborted = await root.createFile('up/partial.bin');
    await aborted.handle.writeFile('half');
    await aborted.abort();
    expect(await readdir(join(rootDir, 'up'))).toEqual(['target.txt']);
    // Through a linked folder: refused.
    expect((await refusal(root.createFile('etcdir/evil'))).reason).toBe('symlink');
  });
});

describe('a 2 GiB sparse file', () => {
  it('is walked by size, refused over the cap without reading, and zipped by streaming', async () => {
    const dir = await temp('sparse');
    await mkdir(join(dir, 'out'));
    const big = 2 * 1024 ** 3;
    await writeFile(join(dir, 'out/sparse.bin'), '');
    await truncate(join(dir, 'out/sparse.bin'), big);
    await writeFile(join(dir, 'out/small.txt'), 'small');
    const root = await WorkspaceRoot.open(dir);
    try {
      const { files } = await collect(root.walk('out'));
      expect(files.get('sparse.bin')).toBe(big);
    } finally {
      await root.close();
    }
    const t0 = Date.now();
    await expect(zipDirectory(join(dir, 'out'), join(dir, 'capped.zip'), { root: dir, maxBytes: 1024 ** 3 })).rejects.toBeInstanceOf(OutputTooLargeError);
    expect(Date.now() - t0).toBeLessThan(10_000); // refused from the sizes, not after reading 2 GiB
    await expect(stat(join(dir, 'capped.zip'))).rejects.toThrow();

    const rss0 = process.memoryUsage().rss;
    const tz = performance.now();
    let peak = rss0;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
    try {
      const a = await zipDirectory(join(dir, 'out'), join(dir, 'o.zip'), { root: dir, maxBytes: 3 * 1024 ** 3 });
      expect(a).toMatchObject({ files: 2, bytes: big + 5 });
    } finally {
      clearInterval(sampler);
    }
    console.info(`2 GiB sparse file zipped in ${Math.round(performance.now() - tz)} ms, peak RSS +${Math.round((peak - rss0) / 2 ** 20)} MiB`);
    // Streaming: memory grew by far less than the file.
    expect(peak - rss0).toBeLessThan(256 * 1024 ** 2);
    const sizes = await new Promise<Map<string, number>>((resolve, reject) => {
      yauzl.open(join(dir, 'o.zip'), { lazyEntries: true }, (err, zip) => {
        if (err || !zip) return reject(err);
        const m = new Map<string, number>();
        zip.on('entry', (e: yauzl.Entry) => {
          m.set(e.fileName, e.uncompressedSize);
          zip.readEntry();
        });
        zip.on('end', () => resolve(m));
        zip.on('error', reject);
        zip.readEntry();
      });
    });
    expect(Object.fromEntries(sizes)).toEqual({ 'small.txt': 5, 'sparse.bin': big });
  }, 300_000);
});

describe('TOCTOU: a task swaps a folder for a link during the walk', () => {
  it('the fd-relative walk never reads outside the root', async () => {
    const dir = await temp('toctou');
    const outside = join(dir, 'outside');
    const ws = join(dir, 'ws');
    await mkdir(join(ws, 'out/sub'), { recursive: true });
    await mkdir(outside);
    for (let i = 0; i < 20; i++) {
      await writeFile(join(ws, `out/sub/f${i}.txt`), `inside-${i}`);
      await writeFile(join(outside, `f${i}.txt`), `OUTSIDE-${i}`);
    }
    await writeFile(join(outside, 'only-outside.txt'), 'OUTSIDE');
    await symlink(outside, join(ws, 'out/link'));
    // Atomic renames swap `sub` between the real folder and the link, as fast as the shell can.
    const swapper = spawn(
      'sh',
      ['-c', 'cd "$1" && while :; do mv -T sub real && mv -T link sub && mv -T sub link && mv -T real sub; done', 'sh', join(ws, 'out')],
      { stdio: 'ignore', detached: true },
    );
    // The shell's `mv` children must die with it: one still renaming would race the folder's removal.
    cleanups.push(() => killGroup(swapper));
    const root = await WorkspaceRoot.open(ws);
    let walks = 0;
    let filesSeen = 0;
    let reads = 0;
    let zips = 0;
    try {
      const end = Date.now() + 4_000;
      // A ZIP succeeds only between swaps: on a loaded host that can take a while, so keep going
      // (up to a minute) until one did.
      const hardEnd = Date.now() + 60_000;
      while (Date.now() < end || walks < 20 || ((zips === 0 || reads === 0) && Date.now() < hardEnd)) {
        walks++;
        for await (const e of root.walk('out')) {
          if (e.kind !== 'file') continue;
          filesSeen++;
          expect(e.name).not.toContain('only-outside');
          try {
            const f = await root.openFile(['out', ...e.parts].map((p) => Buffer.from(p)));
            const text = (await f.handle.readFile()).toString();
            await f.handle.close();
            reads++;
            expect(text).toMatch(/^inside-\d+$/);
          } catch (err) {
            // Swapped away since the walk: refused or gone, never followed.
            expect(err instanceof UnsafePathError || (err instanceof WorkspaceError && err.sysCode === 'ENOENT'), String(err)).toBe(true);
          }
        }
        try {
          const f = await root.openFile('out/sub/f3.txt');
          expect((await f.handle.readFile()).toString()).toBe('inside-3');
          await f.handle.close();
        } catch (err) {
          expect(err instanceof UnsafePathError || (err instanceof WorkspaceError && err.sysCode === 'ENOENT'), String(err)).toBe(true);
        }
        // And the ZIP of the same folder holds only inside bytes.
        const z = await zipDirectory(join(ws, 'out'), join(dir, 'race.zip'), { root: ws }).catch((err: unknown) => {
          expect(err instanceof UnsafePathError || err instanceof WorkspaceError, String(err)).toBe(true);
          return undefined;
        });
        if (z) {
          const entries = await zipEntries(join(dir, 'race.zip'));
          zips++;
          for (const [n, text] of entries) {
            expect(n).toMatch(/^(sub|real)\/f\d+\.txt$/);
            expect(text).toMatch(/^inside-\d+$/);
          }
        }
      }
    } finally {
      await killGroup(swapper);
      await root.close();
    }
    // The race really ran: files were found and read while the swapper worked.
    expect(walks).toBeGreaterThanOrEqual(20);
    expect(filesSeen).toBeGreaterThan(0);
    expect(reads).toBeGreaterThan(0);
    expect(zips).toBeGreaterThan(0);
    for (let i = 0; i < 20; i++) expect(await readFile(join(outside, `f${i}.txt`), 'utf8')).toBe(`OUTSIDE-${i}`);
  }, 120_000);
});
