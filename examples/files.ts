/**
 * Workspace files, the way a tester moves data through an agent: submits a task that waits for
 * its inputs (`hold`), uploads one input over FTP (a tool that only speaks FTP) and one over
 * HTTP with its SHA-256 checked, starts the task, which reads them and writes its outputs, then
 * lists the outputs over HTTP, downloads a file, a byte range of one and the whole outputs
 * folder as a ZIP.
 *
 *   npx tsup && node --import tsx examples/files.ts
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Client } from 'basic-ftp';
import { createAgent, hashToken } from 'smoothtask/agent';

const dir = await mkdtemp(join(tmpdir(), 'smoothtask-example-files-'));
const token = randomBytes(24).toString('base64url');
const ftpPassword = randomBytes(18).toString('base64url');
const agent = await createAgent({
  dataDir: join(dir, 'data'),
  listen: { host: '127.0.0.1', port: 0 },
  auth: { tokens: [{ name: 'tester', sha256: hashToken(token), scopes: ['read', 'submit'] }] },
  policy: { process: { commands: ['sh'] } },
  metrics: { enabled: false },
  // Uploads: 64 MiB per file, 128 MiB per task's inputs, 1 GiB for all tasks together.
  files: { maxFileBytes: 64 * 1024 ** 2, workspaceBytes: 128 * 1024 ** 2, agentBytes: 1024 ** 3 },
  // FTP on loopback (a non-loopback address needs TLS); one user who sees every task.
  ftp: { enabled: true, host: '127.0.0.1', port: 0, users: [{ name: 'tester', passwordSha256: hashToken(ftpPassword), tasks: '*' }] },
});
const { url } = await agent.listen();
console.log(`agent listening on ${url}`);

const auth = { authorization: `Bearer ${token}` };
const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
function check(ok: boolean, what: string): void {
  if (!ok) {
    console.error(`UNEXPECTED: ${what}`);
    process.exitCode = 1;
  }
}

try {
  // 1. A task that waits for its inputs: it counts the lines of inputs/words.txt and copies the data.
  const script = 'set -e; mkdir -p out; wc -l < inputs/words.txt > out/lines.txt; cp inputs/data.bin out/data.bin; sha256sum inputs/data.bin > out/sum.txt';
  let r = await fetch(`${url}/v1/tasks`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ kind: 'process', hold: true, spec: { command: 'sh', args: ['-c', script] } }),
  });
  const { task } = (await r.json()) as { task: { id: string; state: string } };
  console.log(`submitted ${task.id}: ${task.state} (waiting for its inputs)`);

  // 2. Uploads: the body is the file, streamed; x-checksum-sha256 has it checked before it lands.
  const words = Array.from({ length: 1000 }, (_, i) => `word-${i}`).join('\n') + '\n';
  const data = randomBytes(3 * 1024 * 1024);
  // words.txt over FTP: the task's workspace is the folder /<task id>.
  const ftp = new Client(15_000);
  try {
    await ftp.access({ host: '127.0.0.1', port: agent.ftp!.port, user: 'tester', password: ftpPassword });
    await ftp.uploadFrom(Readable.from([words]), `/${task.id}/inputs/words.txt`);
    const listed = await ftp.list(`/${task.id}/inputs`);
    console.log(`FTP STOR inputs/words.txt: listed as ${listed.map((f) => `${f.name} (${f.size} B)`).join(', ')}`);
    check(listed.some((f) => f.name === 'words.txt' && f.size === Buffer.byteLength(words)), 'the FTP upload');
  } finally {
    ftp.close();
  }
  for (const [path, body, checked] of [['inputs/data.bin', data, true]] as const) {
    r = await fetch(`${url}/v1/tasks/${task.id}/files/${path}`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/octet-stream', ...(checked ? { 'x-checksum-sha256': sha256(body) } : {}) },
      body,
    });
    const up = (await r.json()) as { size: number; sha256: string };
    console.log(`PUT ${path}: ${r.status}, ${up.size} bytes, sha256 ${up.sha256.slice(0, 16)}…`);
    check(r.status === 201 && up.sha256 === sha256(body), `upload of ${path}`);
  }
  // A wrong checksum is refused and nothing lands.
  r = await fetch(`${url}/v1/tasks/${task.id}/files/inputs/bad.bin`, { method: 'PUT', headers: { ...auth, 'x-checksum-sha256': '0'.repeat(64) }, body: 'x' });
  console.log(`PUT inputs/bad.bin with a wrong checksum: ${r.status} ${((await r.json()) as { error: { code: string } }).error.code}`);
  check(r.status === 422, 'a wrong checksum is refused');

  // 3. Start it, wait for the end.
  r = await fetch(`${url}/v1/tasks/${task.id}/start`, { method: 'POST', headers: auth });
  check(r.status === 202, 'start');
  let state = '';
  for (let i = 0; i < 300 && !['succeeded', 'failed', 'timed_out', 'cancelled'].includes(state); i++) {
    await new Promise((res) => setTimeout(res, 100));
    state = ((await (await fetch(`${url}/v1/tasks/${task.id}`, { headers: auth })).json()) as { task: { state: string } }).task.state;
  }
  console.log(`task ${task.id}: ${state}`);
  check(state === 'succeeded', 'the task succeeded');

  // 4. Outputs: list, a file, a range of a file, the folder as a ZIP.
  const list = (await (await fetch(`${url}/v1/tasks/${task.id}/files/out`, { headers: auth })).json()) as { entries: { name: string; size: number }[] };
  console.log(`out/: ${list.entries.map((e) => `${e.name} (${e.size} B)`).join(', ')}`);
  const lines = (await (await fetch(`${url}/v1/tasks/${task.id}/files/out/lines.txt`, { headers: auth })).text()).trim();
  console.log(`out/lines.txt: ${lines}`);
  check(lines === '1000', 'the task counted 1000 lines');
  r = await fetch(`${url}/v1/tasks/${task.id}/files/out/data.bin`, { headers: { ...auth, range: 'bytes=1048576-1048591' } });
  const slice = Buffer.from(await r.arrayBuffer());
  console.log(`out/data.bin bytes 1048576-1048591: ${r.status} ${r.headers.get('content-range')} ${slice.toString('hex')}`);
  check(r.status === 206 && slice.equals(data.subarray(1048576, 1048592)), 'the byte range');
  r = await fetch(`${url}/v1/tasks/${task.id}/files/out?format=zip`, { headers: auth });
  const zip = Buffer.from(await r.arrayBuffer());
  console.log(`out/ as a ZIP: ${r.status}, ${zip.length} bytes, ${r.headers.get('x-archive-files')} files`);
  check(r.status === 200 && zip.subarray(0, 2).toString() === 'PK', 'the ZIP');
} finally {
  await agent.close();
  await rm(dir, { recursive: true, force: true });
}
