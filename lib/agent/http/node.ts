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
    description: '200 while health is ok or degraded, 503 when unhealthy (the smoothtask/status contract, cached for 1 s).',
    tags: ['node'],
    ...(authed || !rt.config.http.publicStatus ? { security } : {}),
    response: { 200: NodeStatusOut, 401: E, 403: E, 503: NodeStatusOut },
  });
  const serveStatus = async (request: import('fastify').FastifyRequest, reply: import('fastify').FastifyReply) => {
    reply.hijack();
    rt.node.statusHandler(request.raw, reply.raw);
  };
  r.get('/status', { config: { scope: 'read' }, schema: statusSchema(false) }, serveStatus);
  r.get('/v1/node/status', { config: { scope: 'read' }, schema: statusSchema(true) }, serveStatus);
  void z;
}
