/**
 * Request time limits on the agent's own server: a client that stalls in its headers or in its
 * body is answered 408 / disconnected (slowloris), and the server keeps serving others.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type Harness } from './api-harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startAgent({ http: { headersTimeoutMs: 500, requestTimeoutMs: 1000 } });
});
afterAll(async () => {
  await h?.close();
});

/** Sends `data` and then nothing; resolves with what the server answered before closing (or the deadline). */
function stall(data: string): Promise<{ closed: boolean; answer: string }> {
  const u = new URL(h.url);
  return new Promise((resolve) => {
    const s = connect(Number(u.port), u.hostname, () => s.write(data));
    let answer = '';
    s.setEncoding('utf8');
    s.on('data', (c: string) => (answer += c));
    const deadline = setTimeout(() => {
      s.destroy();
      resolve({ closed: false, answer });
    }, 30_000); // generous: only the outcome is asserted
    s.on('close', () => {
      clearTimeout(deadline);
      resolve({ closed: true, answer });
    });
    s.on('error', () => {});
  });
}

describe('time limits', () => {
  it('headers never finished: the connection is answered 408 and closed', async () => {
    const r = await stall('GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n');
    expect(r.closed).toBe(true);
    if (r.answer) expect(r.answer).toMatch(/^HTTP\/1\.1 408/);
  });

  it('a body that never arrives: 408 and closed; nothing created', async () => {
    const body = '{"kind":"process","spec":{"comm';
    const r = await stall(`POST /v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-admin-0123456789\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n${body}`);
    expect(r.closed).toBe(true);
    if (r.answer) expect(r.answer).toMatch(/^HTTP\/1\.1 408/);
    expect(await h.created()).toEqual({ recorded: [], workspaces: [], inMemory: 0 });
    expect((await fetch(`${h.url}/health`)).status).toBe(200);
  });
});
