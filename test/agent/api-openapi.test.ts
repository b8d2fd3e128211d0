/**
 * The served OpenAPI document: OpenAPI 3.1, valid per @readme/openapi-parser, covering every
 * route of the contract, with the error body and security described; `/docs` renders it
 * with locally served assets.
 */
import { compileErrors, validate } from '@readme/openapi-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type Harness } from './api-harness.js';

let h: Harness;
let doc: { openapi: string; paths: Record<string, Record<string, { security?: unknown; responses: Record<string, unknown> }>>; components: { schemas: Record<string, unknown> } };
beforeAll(async () => {
  h = await startAgent();
  const r = await fetch(`${h.url}/openapi.json`);
  expect(r.status).toBe(200);
  doc = (await r.json()) as typeof doc;
});
afterAll(async () => {
  await h?.close();
});

describe('OpenAPI document', () => {
  it('is OpenAPI 3.1.0 and valid', async () => {
    expect(doc.openapi).toBe('3.1.0');
    const res = await validate(structuredClone(doc) as never);
    expect(res.valid, res.valid ? '' : compileErrors(res)).toBe(true);
  });

  it('covers the task routes with their documented answers', () => {
    expect(Object.keys(doc.paths['/v1/tasks']!).sort()).toEqual(['get', 'post']);
    expect(Object.keys(doc.paths['/v1/tasks/{id}']!).sort()).toEqual(['delete', 'get']);
    expect(Object.keys(doc.paths['/v1/tasks/{id}/cancel']!)).toEqual(['post']);
    const post = doc.paths['/v1/tasks']!.post!;
    expect(Object.keys(post.responses).sort()).toEqual(['201', '400', '401', '403', '409', '413', '415', '429', '500', '503']);
    for (const [p, ops] of Object.entries(doc.paths)) for (const [m, op] of Object.entries(ops)) expect(Object.keys(op.responses), `${m} ${p}`).toEqual(expect.arrayContaining(['500', '503']));
    expect(post.security).toEqual([{ bearer: [] }]);
    expect(Object.keys(doc.components.schemas)).toEqual(expect.arrayContaining(['TaskRecord', 'Error', 'SubmitTask', 'NodeStatus']));
  });

  it('documents the non-JSON answers with their real content types', () => {
    const content = (path: string, method: string, status: string) =>
      Object.keys(((doc.paths[path]![method]!.responses[status] as { content?: Record<string, unknown> }).content ?? {})).sort();
    expect(content('/v1/tasks/{id}/logs', 'get', '200')).toEqual(['application/x-ndjson', 'text/event-stream', 'text/plain']);
    expect(content('/v1/tasks/{id}/logs', 'get', '206')).toEqual(['text/plain']);
    expect(content('/v1/tasks/{id}/artifacts', 'get', '200')).toEqual(['application/zip']);
    expect(content('/metrics', 'get', '200')).toEqual(['text/plain']);
    expect(content('/v1/tasks/{id}', 'delete', '204')).toEqual([]);
    expect(content('/v1/tasks/{id}', 'get', '404')).toEqual(['application/json']);
    // Error answers of non-JSON routes are JSON too.
    for (const status of ['400', '401', '404', '409', '422', '500']) expect(content('/v1/tasks/{id}/artifacts', 'get', status), status).toEqual(['application/json']);
    for (const status of ['401', '403', '500']) expect(content('/metrics', 'get', status), status).toEqual(['application/json']);
    for (const status of ['400', '404', '416']) expect(content('/v1/tasks/{id}/logs', 'get', status), status).toEqual(['application/json']);
  });

  it('does not list the documentation routes themselves', () => {
    expect(Object.keys(doc.paths).filter((p) => p.startsWith('/docs') || p === '/openapi.json')).toEqual([]);
  });

  it('/docs is the rendered reference page, its assets served by the agent', async () => {
    const html = await (await fetch(`${h.url}/docs`)).text();
    expect(html).toContain('swagger-ui');
    const srcs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!).filter((s) => !s.startsWith('data:'));
    expect(srcs.length).toBeGreaterThan(0);
    for (const s of srcs) {
      expect(s.startsWith('http'), `asset ${s} must be local`).toBe(false);
      const u = new URL(s, `${h.url}/docs/`);
      expect((await fetch(u)).status, u.pathname).toBe(200);
    }
  });
});
