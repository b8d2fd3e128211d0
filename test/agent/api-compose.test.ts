/**
 * A compose task over HTTP against the real engine (docker-compose v1): submitted with its file
 * under an allowed mount root, it ends succeeded; each service's stdout/stderr is readable per
 * service (`?service=&stream=`), the combined log holds them, and its outputs ZIP downloads.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engineGate, IMAGE, probeEngine, readZipEntries } from '../docker/helpers.js';
import { finished, startAgent, type Harness } from './api-harness.js';

const probe = await probeEngine();
const fixtures = join(import.meta.dirname, '..', 'fixtures');

describe.skipIf(engineGate(probe))('a compose task over HTTP', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startAgent({
      executors: { process: true, docker: true, compose: true },
      policy: { process: { commands: ['/bin/true'] }, docker: { images: [IMAGE], mountRoots: [fixtures], networkModes: ['none', 'bridge'] } },
    });
  }, 60_000);
  afterAll(async () => {
    await h?.close();
  });

  it('per-service logs by stream, the combined log, and the outputs ZIP', async () => {
    const id = `compose-http-${process.pid}`;
    const r = await h.req('POST', '/v1/tasks', {
      token: 'submit',
      json: { id, kind: 'compose', spec: { files: [join(fixtures, 'docker-compose-ok', 'compose.yml')], exitFrom: 'app', env: { GREETING: 'hi-from-http' } } },
    });
    expect(r.status, await r.clone().text()).toBe(201);
    const done = await finished(h, id);
    expect(done.state, JSON.stringify(done.error ?? null)).toBe('succeeded');
    const log = (q: string) => h.req('GET', `/v1/tasks/${id}/logs?${q}`, { token: 'read' });
    const appOut = await log('service=app&stream=stdout');
    expect(appOut.status).toBe(200);
    expect(await appOut.text()).toContain('app says hi-from-http');
    expect(await (await log('service=app&stream=stderr')).text()).toContain('app-err');
    const cacheOut = await (await log('service=cache&stream=stdout')).text();
    expect(cacheOut).toContain('cache up');
    expect(cacheOut).not.toContain('app says');
    // A service log needs a stream; an unknown service has no log; the combined log has both.
    expect((await log('service=app')).status).toBe(400);
    expect((await log('service=nope&stream=stdout')).status).toBe(404);
    const combined = await (await log('stream=combined')).text();
    expect(combined).toContain('app says hi-from-http');
    expect(combined).toContain('cache up');
    const art = await h.req('GET', `/v1/tasks/${id}/artifacts`, { token: 'read' });
    expect(art.status).toBe(200);
    const entries = await readZipEntries(Buffer.from(await art.arrayBuffer()));
    expect(entries.get('compose.txt')?.toString()).toBe(`from-compose-${id}\n`);
  }, 240_000);
});
