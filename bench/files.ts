/**
 * Workspace file throughput over HTTP on loopback, against `cp` of the same file on the same
 * disk in the same run:
 *
 * - upload: `PUT /v1/tasks/{id}/files/inputs/big.bin` of a `size` MiB file streamed from disk
 *   (the agent hashes it, counts it against the quotas, fsyncs and renames it), against
 *   `cp` + `sync -f` of the same file (the same durability: data on disk before it counts).
 * - download: `GET` of that file streamed to a file on the same disk, then `sync -f` of that
 *   file, against `cp` + `sync -f` (a copy counts once it is on the disk, as for uploads).
 *   The figures up to the client's exit (page cache only, no sync) are reported beside: there
 *   `cp` is an in-kernel copy between cached pages that no transfer through a socket matches.
 *
 * Every timed step starts after a `sync` of the whole system (untimed), so the writeback of
 * one step is not billed to the next. Download clients run with a 4 MiB stdout buffer
 * (`stdbuf -o4M curl -o -`): curl's own `-o file` writes 8 KiB at a time (136k write calls
 * per GiB), which made the client, not the agent, the bottleneck.
 *
 * - FTP: the same upload (STOR) and download (RETR) through the agent's FTP door (curl as
 *   the client, EPSV on loopback), against the HTTP figures of the same round; each FTP step
 *   runs right next to its HTTP step (after it in even rounds, before it in odd ones), so
 *   both doors meet the same state of the disk's writeback.
 *
 * - bare: the same upload to a bare `node:http` server in this process that only counts the
 *   body (no agent): Node's own ceiling, reported beside the targets; and the event loop's
 *   CPU per GiB for both (the agent hashes on a worker thread: its event loop should cost
 *   little more than the bare server's).
 *
 * Targets: HTTP / cp >= 0.5 and FTP / HTTP >= 0.7, both ways (median of `rounds`; best
 * reported beside). Rounds alternate the order so drift hits all. The agent runs in this
 * process; both clients are curl in its own process (as a tester's would be), so the client's
 * CPU is not counted as the agent's.
 *
 *   npm run bench -- files [sizeMiB=1024] [rounds=3]
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { mkdir, mkdtemp, open, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { createAgent, hashToken } from '../lib/agent/index.js';
import type { BenchResult } from './run.js';

const TOKEN = 'bench-token-0123456789abcdef';

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** curl in its own process (the client is not the agent's cost); resolves with its stdout. */
function curl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => execFile('curl', args, { maxBuffer: 1 << 20 }, (e, out) => (e ? reject(e) : resolve(out.trim()))));
}

/** curl writing the body to `file` through a 4 MiB stdout buffer; resolves with its exit. */
async function curlTo(file: string, args: string[]): Promise<void> {
  const out = await open(file, 'w');
  try {
    await new Promise<void>((resolve, reject) => {
      const c = spawn('stdbuf', ['-o4M', 'curl', '-sS', '--fail', '-o', '-', ...args], { stdio: ['ignore', out.fd, 'inherit'] });
      c.on('error', reject);
      c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`curl exited ${code}`))));
    });
  } finally {
    await out.close();
  }
}

/** CPU time of this process's main thread (the event loop), ms (clock-tick resolution). */
function eventLoopCpuMs(): number {
  const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime + stime, in USER_HZ (100)
}

/** Times `fn` from a clean page cache (a whole-system sync first, untimed). */
async function step(fn: () => Promise<unknown> | unknown): Promise<number> {
  execFileSync('sync');
  return timed(fn);
}

/** Times a download: to the client's exit (`cached`) and once `file` is synced too (`durable`). */
async function download(file: string, fn: () => Promise<unknown> | unknown): Promise<{ cached: number; durable: number }> {
  execFileSync('sync');
  const t0 = performance.now();
  await fn();
  const cached = performance.now() - t0;
  execFileSync('sync', ['-f', file]);
  return { cached, durable: performance.now() - t0 };
}

async function timed(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export default async function bench(args: string[]): Promise<BenchResult> {
  const sizeMiB = Number(args[0] ?? 1024);
  const rounds = Number(args[1] ?? 3);
  const bytes = sizeMiB * 1024 * 1024;
  // On the same disk as the agent's data (not tmpfs): the bench compares against disk copies.
  await mkdir(join(process.cwd(), 'bench', 'out'), { recursive: true });
  const dir = await mkdtemp(join(process.cwd(), 'bench', 'out', '.files-'));
  const src = join(dir, 'src.bin');
  execFileSync('sh', ['-c', `head -c ${bytes} /dev/urandom > '${src}' && sync -f '${src}'`]);
  const agent = await createAgent({
    dataDir: join(dir, 'data'),
    listen: { host: '127.0.0.1', port: 0 },
    auth: { tokens: [{ name: 'bench', sha256: hashToken(TOKEN), scopes: ['read', 'submit', 'admin'] }] },
    policy: { process: { commands: ['true'] } },
    metrics: { enabled: false },
    files: { maxFileBytes: bytes * 2, workspaceBytes: bytes * 4, agentBytes: bytes * 8 },
    ftp: { enabled: true, port: 0, users: [{ name: 'bench', passwordSha256: hashToken(TOKEN), tasks: '*' }] },
  });
  const { url } = await agent.listen();
  const auth = { authorization: `Bearer ${TOKEN}` };
  // Node's own ceiling: a bare node:http server in this process that only counts the body.
  const bare = createServer((req, res) => {
    let n = 0;
    req.on('data', (c: Buffer) => (n += c.length));
    req.on('end', () => res.writeHead(n === bytes ? 201 : 400).end());
  });
  await new Promise<void>((r) => bare.listen(0, '127.0.0.1', r));
  const bareUrl = `http://127.0.0.1:${(bare.address() as { port: number }).port}`;
  const bareUp: number[] = [];
  const bareLoopCpu: number[] = [];
  const upLoopCpu: number[] = [];
  const up: number[] = [];
  const cpUp: number[] = [];
  const down: number[] = [];
  const cpDown: number[] = [];
  const downCached: number[] = [];
  const cpDownCached: number[] = [];
  const ftpUp: number[] = [];
  const ftpDown: number[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      const id = `bench-files-${r}`;
      const res = await fetch(`${url}/v1/tasks`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ id, kind: 'process', hold: true, spec: { command: 'true' } }),
      });
      if (res.status !== 201) throw new Error(`submit: ${res.status} ${await res.text()}`);
      const copy = join(dir, `cp-${r}.bin`);
      // FTP runs next to HTTP (before it in odd rounds): the two doors see the same disk state.
      const order = r % 2 === 0 ? ['http', 'ftp', 'cp', 'bare'] : ['bare', 'cp', 'ftp', 'http'];
      const gotFtp = join(dir, `ftp-${r}.bin`);
      const ftpUrl = `ftp://bench:${TOKEN}@127.0.0.1:${agent.ftp!.port}/${id}/inputs/ftp.bin`;
      for (const which of order) {
        if (which === 'bare') {
          const c0 = eventLoopCpuMs();
          bareUp.push(
            await step(async () => {
              const status = await curl(['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'PUT', '-H', 'content-type: application/octet-stream', '-T', src, `${bareUrl}/upload`]);
              if (status !== '201') throw new Error(`bare upload: ${status}`);
            }),
          );
          bareLoopCpu.push(eventLoopCpuMs() - c0);
          continue;
        }
        if (which === 'ftp') {
          ftpUp.push(await step(() => curl(['-sS', '-T', src, ftpUrl])));
          continue;
        }
        if (which === 'http') {
          const c0 = eventLoopCpuMs();
          up.push(
            await step(async () => {
              const status = Number(
                await curl(['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'PUT', '-H', `authorization: Bearer ${TOKEN}`, '-H', 'content-type: application/octet-stream', '-T', src, `${url}/v1/tasks/${id}/files/inputs/big.bin`]),
              );
              if (status !== 201) throw new Error(`upload: ${status}`);
            }),
          );
          upLoopCpu.push(eventLoopCpuMs() - c0);
        } else {
          cpUp.push(await step(() => execFileSync('sh', ['-c', `cp '${src}' '${copy}' && sync -f '${copy}'`])));
        }
      }
      const got = join(dir, `got-${r}.bin`);
      const copy2 = join(dir, `cp2-${r}.bin`);
      for (const which of order) {
        if (which === 'http') {
          const t = await download(got, () => curlTo(got, ['-H', `authorization: Bearer ${TOKEN}`, `${url}/v1/tasks/${id}/files/inputs/big.bin`]));
          down.push(t.durable);
          downCached.push(t.cached);
        } else if (which === 'ftp') {
          ftpDown.push((await download(gotFtp, () => curlTo(gotFtp, [ftpUrl]))).durable);
        } else if (which === 'cp') {
          const t = await download(copy2, () => execFileSync('cp', [copy, copy2]));
          cpDown.push(t.durable);
          cpDownCached.push(t.cached);
        }
      }
      if ((await stat(got)).size !== bytes) throw new Error('download size mismatch');
      if ((await stat(gotFtp)).size !== bytes) throw new Error('FTP download size mismatch');
      for (const f of [copy, copy2, got, gotFtp]) await unlink(f);
      const c = await fetch(`${url}/v1/tasks/${id}/cancel`, { method: 'POST', headers: auth });
      if (c.status !== 202) throw new Error(`cancel: ${c.status} ${await c.text()}`);
      // Deleting the task frees its inputs from the agent's quota for the next round.
      const del = await fetch(`${url}/v1/tasks/${id}`, { method: 'DELETE', headers: auth });
      if (del.status !== 204) throw new Error(`delete: ${del.status} ${await del.text()}`);
    }
  } finally {
    await agent.close();
    bare.close();
    await rm(dir, { recursive: true, force: true });
  }
  const mbps = (ms: number) => Math.round((sizeMiB / (ms / 1000)) * 10) / 10;
  const r2 = (x: number) => Math.round(x * 100) / 100;
  const figures: BenchResult['figures'] = {
    sizeMiB,
    rounds,
    uploadHttpMiBpsMedian: mbps(median(up)),
    uploadHttpMiBpsBest: mbps(Math.min(...up)),
    uploadCpMiBpsMedian: mbps(median(cpUp)),
    uploadBareNodeHttpMiBpsMedian: mbps(median(bareUp)),
    // Event-loop (main thread) CPU per GiB uploaded: the agent (hash on a worker thread) and the bare server.
    uploadHttpEventLoopCpuMsPerGiB: Math.round(median(upLoopCpu) / (sizeMiB / 1024)),
    uploadBareEventLoopCpuMsPerGiB: Math.round(median(bareLoopCpu) / (sizeMiB / 1024)),
    downloadHttpMiBpsMedian: mbps(median(down)),
    downloadHttpMiBpsBest: mbps(Math.min(...down)),
    downloadCpMiBpsMedian: mbps(median(cpDown)),
    downloadHttpCachedMiBpsMedian: mbps(median(downCached)),
    downloadCpCachedMiBpsMedian: mbps(median(cpDownCached)),
    uploadFtpMiBpsMedian: mbps(median(ftpUp)),
    downloadFtpMiBpsMedian: mbps(median(ftpDown)),
  };
  // Throughput ratios: cp time / HTTP time.
  const ratios: BenchResult['ratios'] = {
    uploadHttpOverCpMedian: r2(median(cpUp) / median(up)),
    uploadHttpOverCpBest: r2(Math.min(...cpUp) / Math.min(...up)),
    // What Node's HTTP server reaches with a handler that does nothing, and the agent against it.
    uploadBareNodeHttpOverCpMedian: r2(median(cpUp) / median(bareUp)),
    uploadHttpOverBareNodeHttpMedian: r2(median(bareUp) / median(up)),
    uploadEventLoopCpuOverBareMedian: r2(median(upLoopCpu) / median(bareLoopCpu)),
    downloadHttpOverCpMedian: r2(median(cpDown) / median(down)),
    downloadHttpOverCpBest: r2(Math.min(...cpDown) / Math.min(...down)),
    // Up to the client's exit, nothing synced (not a target: see the header).
    downloadHttpOverCpCachedMedian: r2(median(cpDownCached) / median(downCached)),
    uploadFtpOverHttpMedian: r2(median(up) / median(ftpUp)),
    downloadFtpOverHttpMedian: r2(median(down) / median(ftpDown)),
  };
  return {
    figures,
    ratios,
    targets: {
      uploadHttpAtLeastHalfOfCp: ratios.uploadHttpOverCpMedian! >= 0.5,
      downloadHttpAtLeastHalfOfCp: ratios.downloadHttpOverCpMedian! >= 0.5,
      uploadFtpAtLeast07OfHttp: ratios.uploadFtpOverHttpMedian! >= 0.7,
      downloadFtpAtLeast07OfHttp: ratios.downloadFtpOverHttpMedian! >= 0.7,
    },
  };
}
