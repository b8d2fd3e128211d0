/**
 * Authentication and authorisation over real HTTP: hashed bearer tokens, scopes, anonymous
 * access only on loopback and only when configured; public routes stay public.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../lib/errors/index.js';
import { createAgent, createAuthenticator, hashToken, AgentConfigSchema } from '../../lib/agent/index.js';
import { startAgent, TOKENS, type Harness } from './api-harness.js';

const errOf = async (r: Response) => ((await r.json()) as { error: { code: string; message: string } }).error;
const submit = { kind: 'process', spec: { command: '/bin/true' } };

describe('tokens and scopes', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startAgent();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('no token: 401 with WWW-Authenticate: Bearer, on every /v1 route', async () => {
    for (const [m, p] of [
      ['GET', '/v1/tasks'],
      ['POST', '/v1/tasks'],
      ['GET', '/v1/tasks/x'],
      ['DELETE', '/v1/tasks/x'],
      ['GET', '/v1/nonexistent'],
    ] as const) {
      const r = await h.req(m, p, { token: null, ...(m === 'POST' ? { json: submit } : {}) });
      expect(r.status, `${m} ${p}`).toBe(401);
      expect(r.headers.get('www-authenticate')).toBe('Bearer');
      expect((await errOf(r)).code).toBe('ERR_UNAUTHORIZED');
    }
    expect(h.agent.queue.list()).toHaveLength(0);
  });

  it('wrong token, malformed header, token of another agent: 401 ERR_UNAUTHORIZED', async () => {
    for (const raw of ['nope', TOKENS.read + 'x', TOKENS.read.slice(0, -1), hashToken(TOKENS.admin)]) {
      const r = await h.req('GET', '/v1/tasks', { token: { raw } });
      expect(r.status).toBe(401);
      expect((await errOf(r)).message).toBe('Invalid token');
    }
    for (const header of ['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer  ', `Token ${TOKENS.admin}`]) {
      const r = await fetch(`${h.url}/v1/tasks`, { headers: { authorization: header } });
      expect(r.status, header).toBe(401);
    }
  });

  it('read scope: GETs work; submit, cancel and delete are 403 ERR_FORBIDDEN naming the scope', async () => {
    expect((await h.req('GET', '/v1/tasks', { token: 'read' })).status).toBe(200);
    const s = await h.req('POST', '/v1/tasks', { token: 'read', json: submit });
    expect(s.status).toBe(403);
    const e = await errOf(s);
    expect(e.code).toBe('ERR_FORBIDDEN');
    expect(e.message).toContain("'submit'");
    expect(h.agent.queue.list()).toHaveLength(0);
    expect((await h.req('POST', '/v1/tasks/x/cancel', { token: 'read' })).status).toBe(403);
    expect((await h.req('DELETE', '/v1/tasks/x', { token: 'read' })).status).toBe(403);
  });

  it('submit scope: submit and cancel; delete needs admin', async () => {
    const r = await h.req('POST', '/v1/tasks', { token: 'submit', json: { ...submit, id: 'by-submitter' } });
    expect(r.status).toBe(201);
    await h.agent.queue.wait('by-submitter');
    const d = await h.req('DELETE', '/v1/tasks/by-submitter', { token: 'submit' });
    expect(d.status).toBe(403);
    expect((await errOf(d)).message).toContain("'admin'");
    expect((await h.req('DELETE', '/v1/tasks/by-submitter', { token: 'admin' })).status).toBe(204);
  });

  it('public routes answer without a token: /health, /openapi.json, /docs, /status', async () => {
    for (const p of ['/health', '/openapi.json', '/docs', '/docs/static/swagger-ui.css']) {
      const r = await fetch(h.url + p);
      expect(r.status, p).toBe(200);
    }
    expect([200, 503]).toContain((await fetch(`${h.url}/status`)).status);
  });

  it('no CORS headers by default', async () => {
    const r = await fetch(`${h.url}/v1/tasks`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'GET' } });
    expect(r.headers.get('access-control-allow-origin')).toBeNull();
    const g = await h.req('GET', '/v1/tasks', { token: 'read', headers: { origin: 'https://evil.example' } });
    expect(g.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('CORS for configured origins only', () => {
  it('an allowed origin gets its headers and a preflight; another origin gets none', async () => {
    const h = await startAgent({ http: { cors: { origins: ['https://ui.example'] } } });
    try {
      const pre = await fetch(`${h.url}/v1/tasks`, { method: 'OPTIONS', headers: { origin: 'https://ui.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' } });
      expect(pre.status).toBe(204);
      expect(pre.headers.get('access-control-allow-origin')).toBe('https://ui.example');
      expect(pre.headers.get('access-control-allow-headers')).toContain('authorization');
      const g = await h.req('GET', '/v1/tasks', { token: 'read', headers: { origin: 'https://ui.example' } });
      expect(g.headers.get('access-control-allow-origin')).toBe('https://ui.example');
      expect(g.headers.get('vary')).toContain('Origin');
      const evil = await h.req('GET', '/v1/tasks', { token: 'read', headers: { origin: 'https://evil.example' } });
      expect(evil.status).toBe(200);
      expect(evil.headers.get('access-control-allow-origin')).toBeNull();
      const evilPre = await fetch(`${h.url}/v1/tasks`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
      expect(evilPre.headers.get('access-control-allow-origin')).toBeNull();
      // still authenticated: CORS never replaces the token
      expect((await fetch(`${h.url}/v1/tasks`, { headers: { origin: 'https://ui.example' } })).status).toBe(401);
    } finally {
      await h.close();
    }
  });
});

describe('anonymous access', () => {
  it('configured on loopback: the anonymous scopes apply without a token, a wrong token is still 401', async () => {
    const h = await startAgent({ auth: { tokens: [{ name: 'root', sha256: hashToken(TOKENS.admin), scopes: ['admin'] }], anonymous: ['read'] } });
    try {
      expect((await h.req('GET', '/v1/tasks', { token: null })).status).toBe(200);
      const s = await h.req('POST', '/v1/tasks', { token: null, json: submit });
      expect(s.status).toBe(403);
      expect((await errOf(s)).code).toBe('ERR_FORBIDDEN');
      expect((await h.req('GET', '/v1/tasks', { token: { raw: 'wrong' } })).status).toBe(401);
      expect(h.agent.queue.list()).toHaveLength(0);
    } finally {
      await h.close();
    }
  });

  it('refused by the config schema unless listen.host is loopback', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'st-agent-a-'));
    try {
      for (const host of ['0.0.0.0', '::', '192.168.1.10', 'example.com']) {
        const r = AgentConfigSchema.safeParse({ dataDir: dir, listen: { host, port: 0 }, auth: { anonymous: ['read'] } });
        expect(r.success, host).toBe(false);
        expect(JSON.stringify(r.error?.issues)).toContain('anonymous');
      }
      for (const host of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) {
        expect(AgentConfigSchema.safeParse({ dataDir: dir, listen: { host, port: 0 }, auth: { anonymous: ['read'] } }).success, host).toBe(true);
      }
      await expect(createAgent({ dataDir: dir, listen: { host: '0.0.0.0', port: 0 }, auth: { anonymous: ['admin'] } })).rejects.toBeInstanceOf(ConfigError);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the authenticator refuses anonymous requests from a non-loopback peer even when configured', () => {
    const auth = createAuthenticator({ tokens: [], anonymous: ['read'] });
    expect(auth(undefined, '127.0.0.1').scopes).toEqual(['read']);
    expect(auth(undefined, '::ffff:127.0.0.1').scopes).toEqual(['read']);
    expect(() => auth(undefined, '10.0.0.5')).toThrow(/Authentication required/);
    expect(() => auth(undefined, undefined)).toThrow(/Authentication required/);
  });
});

describe('config', () => {
  it('token hashes: 64 hex digits (case-insensitive), duplicate names refused; unknown keys refused everywhere', () => {
    const base = { dataDir: '/tmp/x' };
    expect(AgentConfigSchema.safeParse({ ...base, auth: { tokens: [{ name: 'a', sha256: hashToken('t').toUpperCase(), scopes: ['read'] }] } }).success).toBe(true);
    expect(AgentConfigSchema.safeParse({ ...base, auth: { tokens: [{ name: 'a', sha256: 'abc', scopes: ['read'] }] } }).success).toBe(false);
    expect(AgentConfigSchema.safeParse({ ...base, auth: { tokens: [{ name: 'a', sha256: hashToken('t'), scopes: ['root'] }] } }).success).toBe(false);
    const dup = AgentConfigSchema.safeParse({
      ...base,
      auth: { tokens: [{ name: 'a', sha256: hashToken('t'), scopes: ['read'] }, { name: 'a', sha256: hashToken('u'), scopes: ['read'] }] },
    });
    expect(dup.success).toBe(false);
    for (const bad of [{ ...base, extra: 1 }, { ...base, http: { cors: { origins: [], x: 1 } } }, { ...base, policy: { docker: { images: [], privileged: false, sock: true } } }]) {
      expect(AgentConfigSchema.safeParse(bad).success).toBe(false);
    }
    expect(AgentConfigSchema.safeParse({ ...base, http: { requestTimeoutMs: 0 } }).success).toBe(false);
  });

  it('an uppercase configured hash still matches the token', async () => {
    const h = await startAgent({ auth: { tokens: [{ name: 'up', sha256: hashToken(TOKENS.admin).toUpperCase(), scopes: ['admin'] }] } });
    try {
      expect((await h.req('GET', '/v1/tasks', { token: 'admin' })).status).toBe(200);
    } finally {
      await h.close();
    }
  });
});
