/**
 * Workspace file throughput over HTTP on loopback, against `cp` of the same file on the same
 * disk in the same run:
 *
 * - upload: `PUT /v1/tasks/{id}/files/inputs/big.bin` of a `size` MiB file streamed from disk
 *   (the agent hashes it, counts it against the quotas, fsyncs and renames it), against
 *   `cp` + `sync -f` of the same file (the same durability: data on disk before it counts).
 * - download: `GET` of that file streamed to a file on the same disk, against `cp`.
 *
 * Target: HTTP / cp >= 0.5 for both (median of `rounds`; min reported beside). Rounds
 * alternate HTTP and cp so drift hits both. The agent runs in this process; the client is
 * node's fetch (undici) in this process too, so the ratio is a lower bound.
 *
 *   npm run bench -- files [sizeMiB=1024] [rounds=3]
 */
import { execFileSync } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createAgent, hashToken } from '../lib/agent/index.js';
import type { BenchResult } from './run.js';

const TOKEN = 'bench-token-0123456789abcdef';

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

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
    auth: { tokens: [{ name: 'bench', sha256: hashToken(TOKEN), scopes: ['read', 'submit'] }] },
    policy: { process: { commands: ['true'] } },
    metrics: { enabled: false },
    files: { maxFileBytes: bytes * 2, workspaceBytes: bytes * 2, agentBytes: bytes * 4 },
  });
  const { url } = await agent.listen();
  const auth = { authorization: `Bearer ${TOKEN}` };
  const up: number[] = [];
  const cpUp: number[] = [];
  const down: number[] = [];
  const cpDown: number[] = [];
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
      const order = r % 2 === 0 ? ['http', 'cp'] : ['cp', 'http'];
      for (const which of order) {
        if (which === 'http') {
          up.push(
            await timed(async () => {
              const put = await fetch(`${url}/v1/tasks/${id}/files/inputs/big.bin`, {
                method: 'PUT',
                headers: { ...auth, 'content-type': 'application/octet-stream', 'content-length': String(bytes) },
                body: Readable.toWeb(createReadStream(src)) as ReadableStream,
                duplex: 'half',
              } as RequestInit);
              if (put.status !== 201) throw new Error(`upload: ${put.status} ${await put.text()}`);
            }),
          );
        } else {
          cpUp.push(await timed(() => execFileSync('sh', ['-c', `cp '${src}' '${copy}' && sync -f '${copy}'`])));
        }
      }
      const got = join(dir, `got-${r}.bin`);
      const copy2 = join(dir, `cp2-${r}.bin`);
      for (const which of order) {
        if (which === 'http') {
          down.push(
            await timed(async () => {
              const g = await fetch(`${url}/v1/tasks/${id}/files/inputs/big.bin`, { headers: auth });
              if (g.status !== 200 || !g.body) throw new Error(`download: ${g.status}`);
              await pipeline(Readable.fromWeb(g.body as never), createWriteStream(got));
            }),
          );
        } else {
          cpDown.push(await timed(() => execFileSync('cp', [copy, copy2])));
        }
      }
      if ((await stat(got)).size !== bytes) throw new Error('download size mismatch');
      for (const f of [copy, copy2, got]) await unlink(f);
      await fetch(`${url}/v1/tasks/${id}/cancel`, { method: 'POST', headers: auth });
      await fetch(`${url}/v1/tasks/${id}`, { method: 'DELETE', headers: auth });
    }
  } finally {
    await agent.close();
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
    downloadHttpMiBpsMedian: mbps(median(down)),
    downloadHttpMiBpsBest: mbps(Math.min(...down)),
    downloadCpMiBpsMedian: mbps(median(cpDown)),
  };
  // Throughput ratios: cp time / HTTP time.
  const ratios: BenchResult['ratios'] = {
    uploadHttpOverCpMedian: r2(median(cpUp) / median(up)),
    uploadHttpOverCpBest: r2(Math.min(...cpUp) / Math.min(...up)),
    downloadHttpOverCpMedian: r2(median(cpDown) / median(down)),
    downloadHttpOverCpBest: r2(Math.min(...cpDown) / Math.min(...down)),
  };
  return { figures, ratios, targets: { uploadAtLeastHalfOfCp: ratios.uploadHttpOverCpMedian! >= 0.5, downloadAtLeastHalfOfCp: ratios.downloadHttpOverCpMedian! >= 0.5 } };
}
