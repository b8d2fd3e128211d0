/**
 * Uploads larger than the background-sync step (64 MiB): the page cache is flushed while the
 * upload goes on, and neither a finished nor a cut upload is changed by it: the finished
 * file is whole with the right SHA-256, a cut one leaves no temporary file and frees its quota.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type Harness } from './api-harness.js';

const MiB = 1024 * 1024;
let h: Harness;
beforeAll(async () => {
  h = await startAgent({ files: { maxFileBytes: 200 * MiB, workspaceBytes: 300 * MiB, agentBytes: 600 * MiB } });
});
afterAll(async () => {
  await h?.close();
});

/** `total` bytes in 1 MiB chunks, each filled with its index; throws after `cutAt` bytes. */
async function* source(total: number, cutAt = Infinity): AsyncGenerator<Uint8Array> {
  for (let off = 0, i = 0; off < total; off += MiB, i++) {
    if (off >= cutAt) throw new Error('connection cut');
    yield Buffer.alloc(Math.min(MiB, total - off), i & 0xff);
  }
}
const hashOf = async (total: number) => {
  const h = createHash('sha256');
  for await (const c of source(total)) h.update(c);
  return h.digest('hex');
};

describe('large uploads with the page cache flushed behind them', () => {
  it('a 150 MiB upload is whole, a cut 130 MiB one leaves nothing and frees its quota', async () => {
    const id = 'large-up';
    const r = await h.req('POST', '/v1/tasks', { token: 'submit', json: { id, kind: 'process', hold: true, spec: { command: '/bin/true' } } });
    expect(r.status).toBe(201);
    const total = 150 * MiB + 123;
    const want = await hashOf(total);
    const w = await h.agent.files.write(id, 'inputs/big.bin', source(total), { sha256: want });
    expect(w).toEqual({ path: 'inputs/big.bin', size: total, sha256: want, replaced: false });
    const onDisk = createHash('sha256').update(await readFile(join(h.dir, 'workspaces', id, 'inputs', 'big.bin'))).digest('hex');
    expect(onDisk).toBe(want);

    // Cut after 130 MiB (two background syncs started): the error is the source's, nothing is left.
    await expect(h.agent.files.write(id, 'inputs/cut.bin', source(180 * MiB, 130 * MiB))).rejects.toThrow(/connection cut/);
    const names = await readdir(join(h.dir, 'workspaces', id, 'inputs'));
    expect(names).toEqual(['big.bin']);
    expect((await h.agent.files.usage()).inFlightBytes).toBe(0);
    // The quota the cut upload held is free again: 140 MiB more fits beside the 150 (with the cut 130 still counted it would not).
    const more = await h.agent.files.write(id, 'inputs/more.bin', source(140 * MiB));
    expect(more.size).toBe(140 * MiB);
  }, 120_000);
});
