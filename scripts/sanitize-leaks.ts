/**
 * Leak check of scripts/sanitize.sh: drives every native part of the addon in one process
 * (run with the ASan build and LeakSanitizer on), closes everything, and exits; LSan then
 * reports any allocation of ours that nothing points to. Prints what it did.
 *   node --import tsx scripts/sanitize-leaks.ts
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { testRunProgram } from '../lib/ebpf/attach.js';
import { field, struct, u32, u64 } from '../lib/ebpf/codec.js';
import { loadObject } from '../lib/ebpf/load.js';
import { createMap } from '../lib/ebpf/map.js';
import { RingBuffer } from '../lib/ebpf/ringbuf.js';
import { bpfObjectDir, loadAddon } from '../lib/native/addon.js';

const dir = bpfObjectDir();
const done: Record<string, number> = {};
const count = (k: string): void => void (done[k] = (done[k] ?? 0) + 1);

async function main(): Promise<void> {
  // loads: success, verifier failure, malformed bytes (fork pre-check), timeouts
  for (let i = 0; i < 20; i++) {
    (await loadObject(join(dir, 'counter.bpf.o'), { cache: false })).close();
    count('load');
  }
  for (const [file, opts] of [
    ['test/broken.bpf.o', {}],
    ['test/slow_verify.bpf.o', { timeoutMs: 1 }],
  ] as const) {
    await loadObject(join(dir, file), { cache: false, ...opts }).then(
      (o) => o.close(),
      () => count('load error'),
    );
  }
  const bytes = (await import('node:fs')).readFileSync(join(dir, 'counter.bpf.o'));
  for (let i = 1; i < 10; i++) {
    await loadObject(new Uint8Array(bytes.subarray(0, Math.floor((bytes.length * i) / 10))), { cache: false }).then(
      (o) => o.close(),
      () => count('malformed'),
    );
  }
  // an object never closed: freed by its finalizer (GC or environment teardown)
  await loadObject(join(dir, 'counter.bpf.o'), { cache: false });
  // pins: pin, reuse, metadata
  const ns = `sanitize-${process.pid}`;
  for (let i = 0; i < 2; i++) (await loadObject(join(dir, 'counter.bpf.o'), { cache: false, pin: { namespace: ns } })).close();
  rmSync(join('/sys/fs/bpf', ns), { recursive: true, force: true });
  count('pin');
  // maps: every operation, and refused arguments
  using m = createMap({ type: 'percpu_hash', keySize: 4, valueSize: 12, maxEntries: 64 }, { key: u32 });
  for (let i = 0; i < 64; i++) m.set(i, Buffer.alloc(12, i));
  m.readAll();
  m.readAll('iterate');
  [...m.keys()];
  m.setMany([[1, Buffer.alloc(12)]]);
  const dp = (loadAddon() as unknown as { dp: { mapLookup(fd: number, k: Uint8Array, v: Uint8Array, f: number): boolean } }).dp;
  try {
    dp.mapLookup(m.fd, Buffer.alloc(1), Buffer.alloc(1), 0);
  } catch {
    count('refused argument');
  }
  count('maps');
  // ring buffer: records produced by a test run, delivered, then closed
  const rec = struct({ seq: field(u64, 0), cpu: field(u32, 8), tag: field(u32, 12) }, 16);
  // (and with reused batch memory: batches released, one left queued for an iterator at close)
  const obj = await loadObject(join(dir, 'test', 'dp_ringbuf.bpf.o'), { cache: false });
  for (const reuseBuffers of [false, true]) {
    const rb = new RingBuffer(obj.mapInfo('events'), { codec: rec, dropCounter: obj.mapInfo('dropped'), reuseBuffers, batchSize: 100 });
    let got = 0;
    rb.on('batch', (b) => (got += b.length));
    const ctx = Buffer.alloc(16);
    ctx.writeBigUInt64LE(1000n, 0);
    await testRunProgram(obj.program('dp_produce'), { ctx });
    for (let t = 0; got < 1000 && t < 500; t++) await new Promise((r) => setTimeout(r, 10));
    if (reuseBuffers) {
      const it = rb.batches();
      void it.next(); // an iterator now holds batches until it moves past them
      await testRunProgram(obj.program('dp_produce'), { ctx });
      await new Promise((r) => setTimeout(r, 50));
    }
    rb.close();
    count(`ringbuf${reuseBuffers ? ' (reuseBuffers)' : ''} records ${got}`);
  }
  obj.close();
  // worker threads: terminated mid-load, and ended normally
  const addon = process.env.SMOOTHTASK_ADDON;
  const code = `const a = require(${JSON.stringify(addon)});
    const elf = require('node:fs').readFileSync(${JSON.stringify(join(dir, 'counter.bpf.o'))});
    for (let i = 0; i < 3; i++) a.loader.load(elf, { name: 'w', trusted: true }).then((o) => o.close(), () => {});
    require('node:worker_threads').parentPort.postMessage('go');`;
  for (let i = 0; i < 6; i++) {
    const w = new Worker(code, { eval: true });
    await new Promise((r) => w.once('message', r));
    if (i % 2) await w.terminate();
    else await new Promise((r) => w.once('exit', r));
    count('worker');
  }
  await new Promise((r) => setTimeout(r, 500)); // loads of terminated workers settle on the pool
  console.log('sanitize-leaks:', JSON.stringify(done));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
