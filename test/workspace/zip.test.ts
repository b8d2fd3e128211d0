// `zipFolder` hands back a stream that the caller pipes later (after its own awaits). A file
// that disappears in between (a running task renames it) must fail that stream when it is
// read, not raise an 'error' event nobody listens to yet: that was an uncaught exception, the
// end of the agent's process (seen once in CI, from the rename race in paths.test.ts).
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { WorkspaceError, WorkspaceRoot, zipFolder } from '../../lib/workspace/index.js';
import { readZip } from '../docker/helpers.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function folder(n: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'smoothtask-zip-'));
  dirs.push(dir);
  await mkdir(join(dir, 'out'));
  for (let i = 0; i < n; i++) await writeFile(join(dir, 'out', `f${i}.txt`), `file-${i}`);
  return dir;
}

describe('zipFolder streams', () => {
  it('a file removed between the walk and the read fails the stream when read; nothing is uncaught', async () => {
    const dir = await folder(3);
    const root = await WorkspaceRoot.open(dir);
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown) => uncaught.push(e);
    process.on('uncaughtException', onUncaught);
    try {
      const z = await zipFolder(root, 'out');
      expect(z?.files).toBe(3);
      await unlink(join(dir, 'out', 'f0.txt'));
      // The caller's own awaits before it pipes.
      await new Promise((r) => setTimeout(r, 200));
      const err = await pipeline(z!.stream, createWriteStream(join(dir, 'a.zip'))).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(WorkspaceError);
      expect((err as WorkspaceError).sysCode).toBe('ENOENT');
      await new Promise((r) => setTimeout(r, 100));
      expect(uncaught).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
      await root.close();
    }
  });

  it('read later, a whole folder still zips; an abandoned stream closes its files', async () => {
    const dir = await folder(50);
    const root = await WorkspaceRoot.open(dir);
    try {
      const z = await zipFolder(root, 'out');
      await new Promise((r) => setTimeout(r, 100));
      await pipeline(z!.stream, createWriteStream(join(dir, 'b.zip')));
      const entries = await readZip(join(dir, 'b.zip'));
      expect(entries.size).toBe(50);
      expect(entries.get('f49.txt')).toBe('file-49');
      const fds = async () => (await import('node:fs/promises')).readdir('/proc/self/fd').then((l) => l.length);
      const before = await fds();
      const z2 = await zipFolder(root, 'out');
      z2!.stream.once('data', () => z2!.stream.destroy());
      z2!.stream.resume();
      await new Promise((r) => z2!.stream.once('close', r));
      await new Promise((r) => setTimeout(r, 100));
      expect(await fds()).toBeLessThanOrEqual(before);
    } finally {
      await root.close();
    }
  });
});
