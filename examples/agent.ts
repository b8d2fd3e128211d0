/**
 * Runs a smoothtask agent on loopback and drives it the way a remote tester would, with plain
 * `fetch` and a bearer token: submits process tasks (one that succeeds, one that fails),
 * follows a log live (NDJSON), reads a byte range, runs a container task that writes outputs
 * and downloads its ZIP (checking the SHA-256 header), lists the tasks, then shuts down.
 *
 *   npx tsup && node --import tsx examples/agent.ts
 *
 * The container part needs dockerd and the image smoothtask/busybox:latest
 * (scripts/docker-up.sh); without them the example says so and skips it.
 * SMOOTHTASK_EXAMPLE_SECONDS (default 3) sets how long the followed task runs.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAgent, hashToken, type Agent } from 'smoothtask/agent';

const seconds = Math.max(1, Number(process.env.SMOOTHTASK_EXAMPLE_SECONDS ?? 3));
const IMAGE = 'smoothtask/busybox:latest';
const dir = await mkdtemp(join(tmpdir(), 'smoothtask-example-agent-'));
const token = randomBytes(24).toString('base64url');

// 1. The agent: loopback, an ephemeral port, one token (only its SHA-256 is in the config),
//    process tasks limited to `sh`, containers limited to one image without network.
const config = {
  dataDir: join(dir, 'data'),
  listen: { host: '127.0.0.1', port: 0 },
  auth: { tokens: [{ name: 'example', sha256: hashToken(token), scopes: ['read' as const, 'submit' as const, 'admin' as const] }] },
  queue: { concurrency: 2 },
  policy: { process: { commands: ['sh'] }, docker: { images: [IMAGE], networkModes: ['none'] } },
  metrics: { enabled: false },
  shutdown: { graceMs: 1000 },
};
let agent: Agent;
let docker = true;
try {
  agent = await createAgent({ ...config, executors: { process: true, docker: true } });
} catch (e) {
  console.log(`(no Docker here: ${(e as Error).message.split('\n')[0]}; the container part is skipped)`);
  docker = false;
  agent = await createAgent({ ...config, executors: { process: true, docker: false } });
}
const { url } = await agent.listen();
console.log(`agent listening on ${url}`);

/** What a CI run must see; a miss makes the example exit 1. */
function check(ok: boolean, what: string): void {
  if (!ok) {
    console.error(`UNEXPECTED: ${what}`);
    process.exitCode = 1;
  }
}

const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
async function api<T = any>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const r = await fetch(url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, body: (text && r.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text) as T };
}
async function waitFinal(id: string): Promise<any> {
  for (;;) {
    const { body } = await api('GET', `/v1/tasks/${id}`);
    if (['succeeded', 'failed', 'timed_out', 'cancelled'].includes(body.task.state)) return body.task;
    await new Promise((r) => setTimeout(r, 200));
  }
}

try {
  // 2. Without a token: 401. The document of the API is public.
  const anon = (await fetch(`${url}/v1/tasks`)).status;
  console.log(`GET /v1/tasks without a token -> ${anon}`);
  check(anon === 401, 'a request without a token is refused with 401');
  const doc = (await (await fetch(`${url}/openapi.json`)).json()) as { openapi: string; paths: object };
  console.log(`GET /openapi.json -> OpenAPI ${doc.openapi}, ${Object.keys(doc.paths).length} paths (reference page at ${url}/docs)`);

  // 3. A task that ticks for a few seconds, followed live as NDJSON.
  const ticks = seconds * 4;
  const sub = await api('POST', '/v1/tasks', {
    id: 'ticker',
    kind: 'process',
    labels: { example: 'agent' },
    spec: { command: 'sh', args: ['-c', `for i in $(seq ${ticks}); do echo "tick $i"; sleep 0.25; done`] },
  });
  console.log(`POST /v1/tasks -> ${sub.status} ${sub.body.task.id} (${sub.body.task.state})`);
  const follow = await fetch(`${url}/v1/tasks/ticker/logs?stream=stdout&follow=true&offset=0`, { headers: { ...headers, accept: 'application/x-ndjson' } });
  let followed = '';
  let pending = '';
  const dec = new TextDecoder();
  for await (const chunk of follow.body!) {
    pending += dec.decode(chunk, { stream: true });
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (!line) continue;
      const ev = JSON.parse(line) as { data?: string; end?: boolean; state?: string };
      if (ev.end) console.log(`  follow ended: task ${ev.state}`);
      else {
        followed += ev.data;
        process.stdout.write(`  followed: ${ev.data!.replace(/\n/g, ' ')}\n`);
      }
    }
  }
  const whole = await api<string>('GET', '/v1/tasks/ticker/logs?stream=stdout');
  console.log(`followed ${Buffer.byteLength(followed)} bytes; the whole log is ${Buffer.byteLength(whole.body)} bytes; same: ${followed === whole.body}`);
  check(followed === whole.body && followed.split('\n').length === ticks + 1, 'the followed log is the whole log');
  const range = await fetch(`${url}/v1/tasks/ticker/logs?stream=stdout`, { headers: { ...headers, range: 'bytes=0-6' } });
  const part = await range.text();
  console.log(`Range bytes=0-6 -> ${range.status} ${JSON.stringify(part)}`);
  check(range.status === 206 && part === 'tick 1\n', 'a byte range answers 206 with those bytes');

  // 4. A failing task, and a refused one (the policy allows only `sh`).
  await api('POST', '/v1/tasks', { id: 'failing', kind: 'process', spec: { command: 'sh', args: ['-c', 'echo about to fail >&2; exit 3'] } });
  const failed = await waitFinal('failing');
  console.log(`task failing -> ${failed.state}, exit code ${failed.exitCode}`);
  check(failed.state === 'failed' && failed.exitCode === 3, 'the failing task failed with exit code 3');
  const refused = await api('POST', '/v1/tasks', { kind: 'process', spec: { command: 'rm', args: ['-rf', '/'] } });
  console.log(`POST rm -rf / -> ${refused.status} ${refused.body.error?.code}: ${refused.body.error?.message}`);
  check(refused.status === 403, 'the policy refuses a command it does not allow');

  // 5. A container task writing outputs; its ZIP downloaded and checked.
  if (docker) {
    await api('POST', '/v1/tasks', {
      id: 'container',
      kind: 'container',
      spec: { image: IMAGE, network: 'none', command: ['sh', '-c', 'mkdir -p /work/out && echo hello from a container > /work/out/hello.txt && date -u > /work/out/when.txt'] },
    });
    const c = await waitFinal('container');
    console.log(`task container -> ${c.state}`);
    const zip = await fetch(`${url}/v1/tasks/container/artifacts`, { headers });
    const buf = Buffer.from(await zip.arrayBuffer());
    const sum = createHash('sha256').update(buf).digest('hex');
    console.log(`GET artifacts -> ${zip.status} ${zip.headers.get('content-type')}, ${buf.length} bytes (Content-Length ${zip.headers.get('content-length')}), sha256 header matches: ${sum === zip.headers.get('x-checksum-sha256')}`);
    check(c.state === 'succeeded' && zip.status === 200 && sum === zip.headers.get('x-checksum-sha256'), 'the container ZIP downloads with its checksum');
    // A ZIP names its entries in clear text in its central directory.
    check(buf.includes('hello.txt') && buf.includes('when.txt'), 'the ZIP holds the files the container wrote');
  }

  // 6. The list, filtered by label.
  const list = await api('GET', '/v1/tasks?label=example=agent');
  console.log(`GET /v1/tasks?label=example=agent -> ${list.body.items.map((t: any) => `${t.id}:${t.state}`).join(', ')}`);
  const all = await api('GET', '/v1/tasks');
  console.log(`all tasks: ${all.body.items.map((t: any) => `${t.id}:${t.state}`).join(', ')}`);
} finally {
  await agent.close();
  await rm(dir, { recursive: true, force: true });
  console.log('agent closed');
}
