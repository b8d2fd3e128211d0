/**
 * Node routes: `/status` (the unchanged `smoothtask/status` contract, 200 / 503), Prometheus
 * `/metrics`, and the authenticated `/v1/node/*` JSON views.
 * @module
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { NodeStatusSchema } from '../../status/status.js';
import { ErrorBodySchema } from './errors.js';
import type { AgentRuntime } from './routes.js';

const E = ErrorBodySchema;
const NodeStatusOut = NodeStatusSchema.meta({ id: 'NodeStatus', description: 'The smoothtask/status contract: tasks, memory, disks, CPU, GPUs, health.' });

/** @internal Registers the node routes. */
export function nodeRoutes(app: FastifyInstance, rt: AgentRuntime): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const security = [{ bearer: [] }];
  const statusSchema = (authed: boolean) => ({
    summary: authed ? 'Node status (authenticated copy of /status)' : 'Node status for a load balancer',
    description: '200 while health is ok or degraded, 503 when unhealthy (the smoothtask/status contract, cached for 1 s), or 503 ERR_AGENT_CLOSED while the agent shuts down.',
    tags: ['node'],
    ...(authed || !rt.config.http.publicStatus ? { security } : {}),
    // 503: the node is unhealthy (a status), or the agent is shutting down (an error body).
    response: { 200: NodeStatusOut, 401: E, 403: E, 503: z.union([NodeStatusOut, E]) },
  });
  const serveStatus = async (request: import('fastify').FastifyRequest, reply: import('fastify').FastifyReply) => {
    reply.hijack();
    rt.node.statusHandler(request.raw, reply.raw);
  };
  r.get('/status', { config: { scope: 'read' }, schema: statusSchema(false) }, serveStatus);
  r.get('/v1/node/status', { config: { scope: 'read' }, schema: statusSchema(true) }, serveStatus);

  r.get(
    '/metrics',
    {
      config: { scope: 'read' },
      schema: {
        summary: 'Prometheus metrics (text exposition format)',
        description: 'The open metric families (smoothtask_* names) and the agent gauges smoothtask_agent_tasks{state} and smoothtask_agent_queue{kind}. Public only with http.publicMetrics.',
        tags: ['node'],
        ...(rt.config.http.publicMetrics ? {} : { security }),
        response: { 200: { description: 'Prometheus text format 0.0.4', content: { 'text/plain': { schema: z.string() } } }, 401: E, 403: E },
      },
    },
    async (_request, reply) => {
      const text = await rt.node.registry.metrics();
      return reply.type(rt.node.registry.contentType).header('cache-control', 'no-store').send(text);
    },
  );

  r.get(
    '/v1/node/metrics',
    {
      config: { scope: 'read' },
      schema: {
        summary: 'JSON snapshot of the metric families',
        tags: ['node'],
        security,
        response: {
          200: z
            .object({
              at: z.number(),
              enabled: z.boolean(),
              backends: z.record(z.string(), z.string()),
              families: z.record(z.string(), z.unknown()),
              errors: z.record(z.string(), z.string()),
            })
            .meta({ id: 'MetricsSnapshot' }),
          401: E,
          403: E,
        },
      },
    },
    async () => rt.node.metrics(),
  );

  const AlertOut = z
    .object({
      rule: z.string(),
      state: z.string(),
      labels: z.record(z.string(), z.string()),
      annotations: z.record(z.string(), z.string()),
      value: z.number(),
      activeAt: z.number(),
      firedAt: z.number().optional(),
      resolvedAt: z.number().optional(),
      lastActiveAt: z.number(),
      fingerprint: z.string(),
    })
    .meta({ id: 'Alert' });
  r.get(
    '/v1/node/alerts',
    {
      config: { scope: 'read' },
      schema: { summary: 'Alerts now firing', tags: ['node'], security, response: { 200: z.object({ items: z.array(AlertOut) }), 401: E, 403: E } },
    },
    async () => ({ items: rt.node.firing().map((a) => ({ ...a, labels: { ...a.labels } })) }),
  );

  r.get(
    '/v1/node/cache',
    {
      config: { scope: 'read' },
      schema: {
        summary: 'eBPF program cache statistics',
        description: '`{ available: false, reason }` unless a metric family runs on eBPF.',
        tags: ['node'],
        security,
        response: {
          200: z.union([
            z.object({ available: z.literal(false), reason: z.string() }),
            z.object({
              available: z.literal(true),
              hits: z.number(),
              misses: z.number(),
              sharedInFlight: z.number(),
              entries: z.number(),
              bytes: z.number(),
              evictions: z.number(),
              loadTimeSavedMs: z.number(),
            }),
          ]),
          401: E,
          403: E,
        },
      },
    },
    async () => rt.node.programCache(),
  );
}
