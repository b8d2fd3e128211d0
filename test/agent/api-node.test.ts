/**
 * Node routes over real HTTP: /status keeps the smoothtask/status contract, /metrics is
 * Prometheus text behind the read scope (unless public), JSON metrics from a real procfs
 * monitor, firing alerts from the real alert engine, program cache statistics.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeStatusSchema } from '../../lib/status/index.js';
import { finished, startAgent, until, type Harness } from './api-harness.js';

describe('status and metrics', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startAgent({
      metrics: { enabled: true, backend: 'procfs', families: ['cpu'], intervalMs: 200 },
      alerts: { rules: [{ name: 'AlwaysOn', expr: { fn: () => 1, op: '>', value: 0 }, labels: { severity: 'info' } }] as never },
    });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('/status: public, the status contract (200 unless unhealthy, 503 when unhealthy), counts the agent tasks', async () => {
    expect((await h.req('POST', '/v1/tasks', { json: { kind: 'process', id: 's1', spec: { command: '/bin/true' } } })).status).toBe(201);
    await finished(h, 's1');
    // The status is cached for 1 s: poll until it shows the finished task.
    await until(async () => JSON.stringify(await (await fetch(`${h.url}/status`)).json()).includes('succeeded'), 'the status to count the task');
    const r = await fetch(`${h.url}/status`);
    const body = NodeStatusSchema.parse(await r.json());
    expect(r.status).toBe(body.health.status === 'unhealthy' ? 503 : 200);
    expect(r.headers.get('cache-control')).toBe('no-store');
    expect(JSON.stringify(body.tasks)).toContain('succeeded');
    const authed = await h.req('GET', '/v1/node/status', { token: 'read' });
    expect(authed.status).toBe(r.status);
    NodeStatusSchema.parse(await authed.json());
    expect((await h.req('GET', '/v1/node/status', { token: null })).status).toBe(401);
  });

  it('/metrics: 401 without a token; Prometheus text with the agent gauges and the metric families', async () => {
    expect((await fetch(`${h.url}/metrics`)).status).toBe(401);
    const r = await h.req('GET', '/metrics', { token: 'read' });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await r.text();
    expect(text).toMatch(/^smoothtask_agent_tasks\{state="succeeded"\} [1-9]/m);
    expect(text).toMatch(/^smoothtask_agent_queue\{kind="active"\} \d+/m);
    await until(async () => /^smoothtask_cpu_/m.test(await (await h.req('GET', '/metrics', { token: 'read' })).text()), 'cpu family in /metrics');
  });

  it('/v1/node/metrics: JSON snapshot of the open families', async () => {
    const m = (await (await h.req('GET', '/v1/node/metrics', { token: 'read' })).json()) as { enabled: boolean; backends: Record<string, string>; families: { cpu?: { processes: unknown[] } } };
    expect(m.enabled).toBe(true);
    expect(m.backends).toEqual({ cpu: 'procfs' });
    expect(m.families.cpu!.processes.length).toBeGreaterThan(0);
  });

  it('/v1/node/alerts: firing alerts of the engine', async () => {
    const a = await until(async () => {
      const body = (await (await h.req('GET', '/v1/node/alerts', { token: 'read' })).json()) as { items: Array<{ rule: string; state: string; labels: Record<string, string> }> };
      return body.items.length ? body.items : undefined;
    }, 'the AlwaysOn alert to fire');
    expect(a[0]).toMatchObject({ rule: 'AlwaysOn', state: 'firing', labels: { alertname: 'AlwaysOn', severity: 'info' } });
  });

  it('/v1/node/cache: not available on procfs', async () => {
    const c = (await (await h.req('GET', '/v1/node/cache', { token: 'read' })).json()) as { available: boolean };
    expect(c).toEqual({ available: false, reason: 'no metric family runs on eBPF' });
  });
});

describe('public switches', () => {
  it('publicMetrics opens /metrics; publicStatus false closes /status', async () => {
    const h = await startAgent({ http: { publicMetrics: true, publicStatus: false } });
    try {
      expect((await fetch(`${h.url}/metrics`)).status).toBe(200);
      expect((await fetch(`${h.url}/status`)).status).toBe(401);
      expect([200, 503]).toContain((await h.req('GET', '/status', { token: 'read' })).status);
      const m = (await (await h.req('GET', '/v1/node/metrics')).json()) as { enabled: boolean };
      expect(m.enabled).toBe(false);
      expect(await (await h.req('GET', '/v1/node/cache')).json()).toEqual({ available: false, reason: 'metrics are disabled' });
    } finally {
      await h.close();
    }
  });
});
