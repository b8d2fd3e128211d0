import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdirSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessExecutor } from 'smoothtask/process';
import { TaskLogWriter } from 'smoothtask/docker';
import { TaskQueue } from 'smoothtask/task';

// Logs of untrusted tasks: a cap, backpressure to the child, and followLog of any size.
let dataDir: string;
beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'st-log-'));
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

const MiB = 1024 * 1024;

/** Samples this process's RSS while `fn` runs; resolves with fn's value and the peak growth. */
async function rssGrowth<T>(fn: () => Promise<T>): Promise<{ value: T; growth: number }> {
  globalThis.gc?.();
  const base = process.memoryUsage.rss();
  let peak = base;
  const t = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 10);
  try {
    const value = await fn();
    peak = Math.max(peak, process.memoryUsage.rss());
    return { value, growth: peak - base };
  } finally {
    clearInterval(t);
  }
}

describe('task logs', () => {
  // 1 GiB as in the report with SMOOTHTASK_FLOOD_MIB=1024 (~20-50 s on a loaded 2-core host);
  // by default 320 MiB, five times the cap, to keep the file under a minute there.
  const floodMiB = Number(process.env.SMOOTHTASK_FLOOD_MIB ?? 320);
  it(`a ${floodMiB} MiB flood is capped at the default 64 MiB: one marker, the dropped bytes counted, memory bounded`, async () => {
    const q = new TaskQueue({ dataDir: join(dataDir, 'flood') });
    q.registerExecutor('process', new ProcessExecutor());
    const { value: r, growth } = await rssGrowth(() => q.submit({ kind: 'process', spec: { command: 'head', args: ['-c', String(floodMiB * MiB), '/dev/zero'] }, timeoutMs: 110_000 }).done);
    await q.close();
    expect(r.state).toBe('succeeded');
    const cap = 64 * MiB;
    const marker = `\n[smoothtask: log cap of ${cap} bytes reached; further stdout/stderr is dropped]\n`;
    for (const f of [r.logs!.stdout, r.logPath!]) {
      expect(statSync(f).size).toBe(cap + marker.length);
    }
    expect(r.logDroppedBytes).toBe(floodMiB * MiB - cap);
    const fh = await readFile(r.logPath!);
    expect(fh.subarray(cap).toString()).toBe(marker);
    expect(growth).toBeLessThan(150 * MiB);
  }, 120_000);

  it('backpressure: with a slow sink the child is slowed down and memory stays bounded', async () => {
    // The log files are FIFOs drained slowly by this process: a sink much slower than the child.
    const q = new TaskQueue({ dataDir: join(dataDir, 'slow'), maxLogBytes: 1024 * MiB });
    q.registerExecutor('process', new ProcessExecutor());
    const id = `slow-${randomBytes(4).toString('hex')}`;
    const ws = join(dataDir, 'slow', id);
    mkdirSync(ws, { recursive: true });
    const total = 48 * MiB;
    const drained: Record<string, number> = {};
    const readers = ['stdout.log', 'output.log'].map((f) => {
      execFileSync('mkfifo', [join(ws, f)]);
      drained[f] = 0;
      return new Promise<void>((resolve, reject) => {
        const rs = createReadStream(join(ws, f), { highWaterMark: 256 * 1024 });
        rs.on('data', (c) => {
          drained[f]! += c.length;
          rs.pause();
          setTimeout(() => rs.resume(), 10); // ~25 MB/s at best, far below the pipe's speed
        });
        rs.on('end', resolve);
        rs.on('error', reject);
      });
    });
    const t0 = Date.now();
    const { value: r, growth } = await rssGrowth(async () => {
      const rec = await q.submit({ id, kind: 'process', spec: { command: 'head', args: ['-c', String(total), '/dev/zero'] }, timeoutMs: 55_000 }).done;
      await Promise.all(readers);
      return rec;
    });
    await q.close();
    expect(r.state).toBe('succeeded');
    expect(drained['stdout.log']).toBe(total);
    expect(drained['output.log']).toBe(total);
    expect(r.logDroppedBytes).toBeUndefined();
    // Without backpressure the two files' write buffers hold most of the 2 x 48 MiB.
    expect(growth).toBeLessThan(32 * MiB);
    expect(Date.now() - t0).toBeGreaterThan(500); // the child really waited for the sink
  }, 60_000);

  it('followLog streams a 100+ MB log in order with bounded memory, live and after the end', async () => {
    const q = new TaskQueue({ dataDir: join(dataDir, 'follow'), maxLogBytes: 512 * MiB });
    q.registerExecutor('process', new ProcessExecutor());
    const h = q.submit({ kind: 'process', spec: { command: 'seq 1 14000000; echo tail >&2', shell: true }, timeoutMs: 55_000 });
    const follow = async () => {
      const hash = { stdout: createHash('sha256'), stderr: createHash('sha256') };
      let bytes = 0;
      let chunks = 0;
      for await (const ev of q.followLog(h.id)) {
        const b = Buffer.from(ev.chunk);
        hash[ev.stream as 'stdout' | 'stderr'].update(b);
        bytes += b.length;
        chunks++;
      }
      return { stdout: hash.stdout.digest('hex'), stderr: hash.stderr.digest('hex'), bytes, chunks };
    };
    const live = await rssGrowth(follow);
    const r = await h.done;
    expect(r.state).toBe('succeeded');
    const size = statSync(r.logs!.stdout).size;
    expect(size).toBeGreaterThan(100 * MiB);
    const fileHash = createHash('sha256').update(await readFile(r.logs!.stdout)).digest('hex');
    expect(live.value.stdout).toBe(fileHash);
    expect(live.value.stderr).toBe(createHash('sha256').update('tail\n').digest('hex'));
    expect(live.value.bytes).toBe(size + 5);
    expect(live.value.chunks).toBeGreaterThan(10);
    const after = await rssGrowth(follow);
    expect(after.value.stdout).toBe(fileHash);
    expect(after.value.bytes).toBe(size + 5);
    expect(after.growth).toBeLessThan(150 * MiB);
    await q.close();
  }, 60_000);

  it('container logs (TaskLogWriter) have the same cap: one marker, dropped bytes counted', async () => {
    const w = await new TaskLogWriter(join(dataDir, 'docker-logs'), { maxBytes: 100_000 }).init();
    const heard: Buffer[] = [];
    w.subscribe((c) => heard.push(c.data));
    for (let i = 0; i < 50; i++) await w.write('main', i % 2 ? 'stderr' : 'stdout', Buffer.alloc(10_000, 97));
    await w.close();
    const out = statSync(w.path('main', 'stdout')).size + statSync(w.path('main', 'stderr')).size;
    const marker = `\n[smoothtask: log cap of 100000 bytes reached; further output is dropped]\n`;
    expect(out).toBe(100_000 + marker.length);
    expect(w.droppedBytes).toBe(400_000);
    expect(Buffer.concat(heard).toString()).toBe('a'.repeat(100_000) + marker);
  });
});
