// Item 6 of issue 12: a full disk must give a typed store error and never leak the document's
// lock. Runs on a 64 KiB tmpfs mounted for this file (the tests run as root).
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { JsonStore, StoreIoError, writeFileDurable } from 'smoothtask/store';
import { SmoothtaskError } from '../../lib/errors/index.js';
import { bundleChild, startChild } from './helpers.js';

const Doc = z.object({ n: z.number().int(), writer: z.number(), pad: z.string() });
let mnt: string;
let bundle: string;
let mounted = false;
const fillers = new Set<string>();
afterEach(async () => {
  for (const f of fillers) await rm(f, { force: true });
  fillers.clear();
});

beforeAll(async () => {
  mnt = await mkdtemp(join(tmpdir(), 'st-enospc-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]);
  mounted = true;
  bundle = await bundleChild();
});
afterAll(async () => {
  if (mounted) execFileSync('umount', ['-l', mnt]);
  await rm(mnt, { recursive: true, force: true });
});

/** Fills the file system: writes until ENOSPC, returns the filler's path. */
async function fill(dir: string): Promise<string> {
  const filler = join(dir, 'filler');
  fillers.add(filler);
  const err = await writeFile(filler, Buffer.alloc(1 << 20, 1)).catch((e: NodeJS.ErrnoException) => e);
  expect((err as NodeJS.ErrnoException | undefined)?.code).toBe('ENOSPC');
  return filler;
}

/** A child process (its own lock client, 5 s lock wait) updates `key`; resolves with its exit code and stderr. */
async function childUpdate(dir: string, key: string): Promise<{ code: number | null; err: string }> {
  const child = await startChild(bundle, ['once', dir, key], 'start');
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((r) => {
    if (child.exitCode !== null) r(child.exitCode);
    else child.once('exit', (c) => r(c));
  });
  return { code, err };
}

function expectNoSpace(e: unknown): void {
  expect(e).toBeInstanceOf(StoreIoError);
  expect(e).toBeInstanceOf(SmoothtaskError);
  const se = e as StoreIoError;
  expect(se.code).toBe('ERR_STORE_IO');
  expect(se.systemCode).toBe('ENOSPC');
  expect(se.errno).toBe(28);
}

describe('store on a full disk (64 KiB tmpfs)', () => {
  it('a new document (lock owner file cannot be written): typed ENOSPC error, lock released, another process writes once space is back', async () => {
    const dir = join(mnt, 'a');
    const s = await JsonStore.open({ dir });
    const filler = await fill(mnt);
    const e = await s.write('fresh', Doc, { n: 1, writer: process.pid, pad: 'p' }).catch((x: unknown) => x);
    expectNoSpace(e);
    // Same process, second instance: would wait on a leaked lock.
    const s2 = await JsonStore.open({ dir, lock: { waitMs: 2000 } });
    const e2 = await s2.update('fresh', Doc, () => ({ n: 1, writer: 0, pad: '' })).catch((x: unknown) => x);
    expectNoSpace(e2);
    await unlink(filler);
    const r = await childUpdate(dir, 'fresh');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect((await s.read('fresh', Doc))?.n).toBe(1);
    // Nothing left behind but the document and the lease's owner token.
    expect((await readdir(dir)).sort()).toEqual(['.store.lock-owner', 'fresh.json']);
  });

  it('an existing document (temp file cannot be written): typed ENOSPC error, old content kept, no temp file, lock released', async () => {
    const dir = join(mnt, 'b');
    const s = await JsonStore.open({ dir });
    await s.write('doc', Doc, { n: 7, writer: process.pid, pad: '' });
    const filler = await fill(mnt);
    const e = await s.update('doc', Doc, (d) => ({ n: d!.n + 1, writer: process.pid, pad: 'z'.repeat(32 * 1024) })).catch((x: unknown) => x);
    expectNoSpace(e);
    expect((e as StoreIoError).path).toBe(join(dir, 'doc.json'));
    await sleep(20); // the lease is released on the next turn of the event loop
    expect((await readdir(dir)).sort()).toEqual(['.store.lock-owner', 'doc.json']);
    expect((await s.read('doc', Doc))?.n).toBe(7);
    await unlink(filler);
    const r = await childUpdate(dir, 'doc');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect((await s.read('doc', Doc))?.n).toBe(8);
  });

  it('writeFileDurable and a store on a full disk throw typed errors and leave no temp file', async () => {
    const dir = join(mnt, 'c');
    const s = await JsonStore.open({ dir, lock: false });
    const filler = await fill(mnt);
    const e = await writeFileDurable(join(dir, 'raw.json'), 'x'.repeat(16 * 1024)).catch((x: unknown) => x);
    expectNoSpace(e);
    const e2 = await s.write('nolock', Doc, { n: 1, writer: 1, pad: 'q'.repeat(16 * 1024) }).catch((x: unknown) => x);
    expectNoSpace(e2);
    expect(await readdir(dir)).toEqual([]);
    await unlink(filler);
    await s.write('nolock', Doc, { n: 1, writer: 1, pad: '' });
    expect((await s.read('nolock', Doc))?.n).toBe(1);
  });
});
