/**
 * The agent's Fastify plugin: public routes, the OpenAPI 3.1 document and reference page, and
 * the authenticated `/v1` API.
 * @module
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { JsonStore } from '../../store/store.js';
import type { TaskQueue } from '../../task/queue.js';
import type { WebhookDispatcher } from '../../webhook/dispatcher.js';
import { createAuthenticator, hasScope, type Principal } from '../auth.js';
import type { AgentConfig, Scope } from '../config.js';
import { AgentClosedError, AuthError } from '../errors.js';
import type { NodeServices } from '../node.js';
import { ErrorBodySchema, errorHandler } from './errors.js';
import type { StreamRegistry } from './streams.js';
import type { ArtifactCache } from './artifacts.js';
import { taskRoutes } from './tasks.js';
import { nodeRoutes } from './node.js';
import { logRoutes } from './logs.js';
import { webhookRoutes, type DeliveryLog } from './webhooks.js';
import { artifactRoutes } from './artifacts.js';
import { fileRoutes } from './files.js';
import type { WorkspaceFiles } from '../files.js';
import type { DashboardFeed } from '../dashboard.js';
import { dashboardRoutes, isDashboardAsset } from './dashboard.js';

/** Options of `agent.register(app, options)`. */
export interface RegisterOptions {
  /** Path prefix of every agent route (default none: `/health`, `/v1/tasks`, ...). */
  prefix?: string;
}

/** @internal What the routes need from the agent. */
export interface AgentRuntime {
  config: AgentConfig;
  queue: TaskQueue;
  store: JsonStore;
  webhooks: WebhookDispatcher;
  node: NodeServices;
  streams: StreamRegistry;
  artifacts: ArtifactCache;
  deliveries: DeliveryLog;
  /** Root of the task workspaces (`<dataDir>/workspaces`). */
  workspaces: string;
  /** File access to the workspaces (HTTP, FTP). */
  files: WorkspaceFiles;
  /** The dashboard's event feed (runs while a page is open). */
  dashboard: DashboardFeed;
  closing(): boolean;
}

/** @internal Route config: the scope a route needs (`undefined`: public). */
export interface RouteScope {
  scope?: Scope;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The scope an agent route needs (`read`, `submit`, `admin`). */
    scope?: Scope;
    /** The route streams an upload body: its time limit is `files.uploadTimeoutMs`, not `http.requestTimeoutMs`. */
    upload?: boolean;
  }
  interface FastifyRequest {
    /** Who made the request (set by the agent's auth hook on authenticated routes). */
    principal?: Principal;
  }
}

/** @internal The API version, in the document and the `/health` answer. */
export const API_VERSION = '1.0.0';




/** @internal The agent's routes as a Fastify plugin (registered by `listen()` or `register()`). */
export async function agentRoutes(app: FastifyInstance, opts: { runtime: AgentRuntime; prefix: string; ownServer?: boolean }): Promise<void> {
  const rt = opts.runtime;
  const cfg = rt.config;
  const prefix = app.prefix;
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(errorHandler);

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'smoothtask agent',
        version: API_VERSION,
        description:
          'Submit tasks (processes, containers, compose projects), follow their logs, download their artifacts, ' +
          'register webhook listeners and read the node. Every error is `{ error: { code, message, issues?, rule? } }`.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  });
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true });

  const publicPaths = new Set(['/health', '/openapi.json']);
  if (cfg.http.publicStatus) publicPaths.add('/status');
  if (cfg.http.publicMetrics) publicPaths.add('/metrics');
  // The dashboard's shell (HTML, script, styles: no data) is public; its data needs a token.
  const isPublic = (rel: string) => publicPaths.has(rel) || rel === '/docs' || rel.startsWith('/docs/') || isDashboardAsset(rel);
  // Every route documents the answers any route can give: 500, 503 while the agent closes, and
  // 401/403 where a token is needed (added before swagger reads the schemas, which it does lazily).
  app.addHook('onRoute', (route) => {
    const schema = route.schema as { response?: Record<string, unknown>; hide?: boolean } | undefined;
    if (!schema?.response || schema.hide) return;
    const rel = route.url.slice(prefix.length) || '/';
    const extra: Record<string, unknown> = { 500: ErrorBodySchema, 503: ErrorBodySchema };
    if (!isPublic(rel)) Object.assign(extra, { 401: ErrorBodySchema, 403: ErrorBodySchema });
    for (const [code, s] of Object.entries(extra)) schema.response[code] ??= s;
  });

  const authenticate = createAuthenticator(cfg.auth);

  // CORS only for the configured origins (none by default: no header is ever sent then).
  const corsOrigins = new Set(cfg.http.cors.origins);
  if (corsOrigins.size) {
    app.addHook('onRequest', async (request, reply) => {
      const origin = request.headers.origin;
      if (!origin || !(corsOrigins.has(origin) || corsOrigins.has('*'))) return;
      reply.header('access-control-allow-origin', origin).header('vary', 'Origin');
      if (request.method === 'OPTIONS' && request.headers['access-control-request-method']) {
        await reply
          .code(204)
          .header('access-control-allow-methods', 'GET, POST, DELETE')
          .header('access-control-allow-headers', 'authorization, content-type, last-event-id, range, if-none-match')
          .header('access-control-max-age', '600')
          .send();
        return reply;
      }
      reply.header('access-control-expose-headers', 'location, retry-after, content-range, content-length, x-checksum-sha256, etag');
    });
  }

  // The server's own request timeout is the upload limit (files.uploadTimeoutMs): every other
  // route must have its whole request within http.requestTimeoutMs, or is answered 408 and closed.
  app.addHook('onRequest', async (request, reply) => {
    const raw = request.raw;
    if (raw.complete || request.routeOptions.config?.upload) return;
    const t = setTimeout(() => {
      if (raw.complete || raw.socket.destroyed) return;
      if (!reply.raw.headersSent) raw.socket.end('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      raw.socket.destroySoon();
    }, cfg.http.requestTimeoutMs);
    t.unref();
    const clear = () => clearTimeout(t);
    raw.once('end', clear);
    raw.once('close', clear);
    reply.raw.once('finish', clear);
  });

  app.addHook('onRequest', async (request: FastifyRequest) => {
    if (rt.closing()) throw new AgentClosedError('The agent is shutting down');
    const url = request.routeOptions.url;
    const rel = url === undefined ? request.url.split('?')[0]! : url.slice(prefix.length) || '/';
    if (url !== undefined && isPublic(rel)) return;
    const principal = authenticate(request.headers.authorization, request.socket.remoteAddress);
    const needed: Scope = (request.routeOptions.config as RouteScope | undefined)?.scope ?? (request.method === 'GET' || request.method === 'HEAD' ? 'read' : 'admin');
    if (!hasScope(principal.scopes, needed)) {
      throw new AuthError(403, `Token '${principal.name}' lacks the '${needed}' scope for ${request.method} ${rel}`);
    }
    request.principal = principal;
  });

  if (opts.ownServer || prefix !== '') {
    app.setNotFoundHandler((request, reply) => {
      void reply.code(404).send({ error: { code: 'ERR_NOT_FOUND', message: `No route ${request.method} ${request.url.split('?')[0]}` } });
    });
  }

  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/health',
    {
      schema: {
        summary: 'Liveness: 200 while the agent process serves requests',
        tags: ['node'],
        response: { 200: z.object({ ok: z.literal(true), version: z.string() }), 503: ErrorBodySchema },
      },
    },
    async () => ({ ok: true as const, version: API_VERSION }),
  );
  taskRoutes(app, rt);
  nodeRoutes(app, rt);
  logRoutes(app, rt);
  artifactRoutes(app, rt);
  fileRoutes(app, rt);
  webhookRoutes(app, rt);
  dashboardRoutes(app, rt, { root: opts.ownServer === true || prefix !== '' });
  // Open follow streams would keep close() waiting (fastify/sse#57): end them first.
  app.addHook('preClose', async () => rt.streams.endAll());
  r.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
