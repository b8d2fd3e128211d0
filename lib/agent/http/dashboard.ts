/**
 * The dashboard: its static shell at `/ui/` (public: HTML, script and styles, no data; `/`
 * redirects there) and its one live stream, `GET /v1/dashboard/stream` (read scope), Server-Sent
 * Events multiplexing the node, tasks, alerts and eBPF events of {@link DashboardFeed}.
 *
 * The page is plain files in `lib/agent/ui` (copied to `dist/ui` by the build) plus uPlot from
 * its package; nothing is bundled on the user's side.
 * @module
 */
import { existsSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { API_VERSION, type AgentRuntime } from './routes.js';
import { ErrorBodySchema } from './errors.js';
import { hasScope } from '../auth.js';
import type { DashboardEvent } from '../dashboard.js';

/** Heartbeat period of the stream (SSE comment lines). */
const HEARTBEAT_MS = 15_000;
/** Bytes a page may have unread before it is dropped (it reconnects and resumes). */
const MAX_BACKLOG_BYTES = 4 * 1024 * 1024;

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

const CSP = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/** The folder holding index.html: `lib/agent/ui` next to the sources, `dist/ui` in the package. */
function uiDir(): string | undefined {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const c of [join(here, '..', 'ui'), join(here, 'ui'), join(here, '..', '..', 'ui'), join(here, '..', 'agent', 'ui'), join(here, '..', 'lib', 'agent', 'ui')]) {
    if (existsSync(join(c, 'index.html'))) return c;
  }
  return undefined;
}

/** The served files: name → path (a fixed set read at start; nothing else is ever opened). */
function assets(): Map<string, string> {
  const files = new Map<string, string>();
  const dir = uiDir();
  if (dir) for (const f of readdirSync(dir)) if (/^[\w.-]+\.(html|js|css|svg|png)$/.test(f)) files.set(f, join(dir, f));
  try {
    const req = createRequire(import.meta.url);
    const root = dirname(req.resolve('uplot/package.json'));
    files.set('vendor/uPlot.iife.min.js', join(root, 'dist', 'uPlot.iife.min.js'));
    files.set('vendor/uPlot.min.css', join(root, 'dist', 'uPlot.min.css'));
  } catch {
    /* uplot missing: the page says so */
  }
  return files;
}

/** @internal Whether `rel` (a path without the prefix) is part of the dashboard's public shell. */
export function isDashboardAsset(rel: string): boolean {
  return rel === '/' || rel === '/ui' || rel === '/ui/' || rel.startsWith('/ui/');
}

function sse(event: string, id: number, data: unknown): string {
  return `event: ${event}\nid: ${id}\ndata: ${JSON.stringify(data)}\n\n`;
}

/**
 * @internal Registers the dashboard routes. `root`: also redirect `/` to the page (the agent
 * owns the server, or mounts under a prefix; inside a user's app without a prefix, `/` is theirs).
 */
export function dashboardRoutes(app: FastifyInstance, rt: AgentRuntime, opts: { root: boolean }): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const files = assets();
  const cache = new Map<string, Buffer>();
  const prefix = app.prefix;

  const sendAsset = async (reply: FastifyReply, name: string) => {
    const path = files.get(name);
    if (!path) return reply.code(404).send({ error: { code: 'ERR_NOT_FOUND', message: `No dashboard file '${name}'` } });
    let body = cache.get(name);
    if (!body) {
      body = await readFile(path);
      cache.set(name, body);
    }
    const ext = name.slice(name.lastIndexOf('.'));
    return reply
      .type(TYPES[ext] ?? 'application/octet-stream')
      .header('content-security-policy', CSP)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('x-frame-options', 'DENY')
      .header('cache-control', 'no-cache')
      .send(body);
  };

  if (opts.root) app.get('/', { schema: { hide: true } }, async (_req, reply) => reply.redirect(`${prefix}/ui/`, 302));
  app.get('/ui', { schema: { hide: true } }, async (_req, reply) => reply.redirect(`${prefix}/ui/`, 302));
  app.get('/ui/', { schema: { hide: true } }, async (_req, reply) => sendAsset(reply, 'index.html'));
  app.get('/ui/*', { schema: { hide: true } }, async (req, reply) => sendAsset(reply, (req.params as { '*': string })['*']));

  r.get(
    '/v1/dashboard/stream',
    {
      config: { scope: 'read' },
      schema: {
        summary: "The dashboard's live events (Server-Sent Events)",
        description:
          'One stream per page: `hello` first (version, hostname, the token\'s scopes), the whole tasks table (`tasks` with full=true, the newest 2000), ' +
          'the latest `node`, `alerts` and `ebpf` events, then at most one event of each kind per second: `node` (CPU, memory, load, run-queue latency, ' +
          'busiest processes and containers, TCP, disks, GPU/thermal/power or why not), `tasks` (changed rows), `alerts` (when they change), `ebpf` (every 5 s). ' +
          '`id:` increases; a page that reconnects sends Last-Event-ID and gets the table and latest events again. Heartbeat comments every 15 s. ' +
          'A page that leaves more than 4 MiB unread is dropped (it reconnects). Use fetch with the Authorization header (EventSource cannot send it).',
        tags: ['node'],
        security: [{ bearer: [] }],
        response: {
          200: { description: 'text/event-stream', content: { 'text/event-stream': { schema: z.string().describe('event: hello|tasks|node|alerts|ebpf, id, data: JSON') } } },
          401: ErrorBodySchema,
          403: ErrorBodySchema,
        },
      },
    },
    async (request, reply) => {
      const feed = rt.dashboard;
      reply.hijack();
      const res = reply.raw;
      request.raw.socket.setTimeout(0);
      res.writeHead(200, {
        ...(reply.getHeaders() as Record<string, string>),
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        'x-accel-buffering': 'no',
        connection: 'keep-alive',
      });
      let closed = false;
      const write = (chunk: string) => {
        if (closed) return;
        if (res.writableLength > MAX_BACKLOG_BYTES) {
          // A page that does not read: drop it (it reconnects with Last-Event-ID).
          closed = true;
          res.destroy();
          return;
        }
        res.write(chunk);
      };
      write(`retry: 1000\n`);
      write(sse('hello', feed.lastId, { version: API_VERSION, hostname: feed.hostname, scopes: (['read', 'submit', 'admin'] as const).filter((sc) => hasScope(request.principal?.scopes ?? [], sc)), intervalMs: feed.intervalMs }));
      write(sse('tasks', feed.lastId, feed.fullTable()));
      for (const e of feed.latest()) write(sse(e.event, feed.lastId, e.data));
      const off = feed.subscribe((e: DashboardEvent, id: number) => write(sse(e.event, id, e.data)));
      const hb = setInterval(() => write(': heartbeat\n\n'), HEARTBEAT_MS);
      hb.unref();
      const end = () => {
        closed = true;
        clearInterval(hb);
        off();
        untrack();
      };
      const untrack = rt.streams.add(res, () => {
        end();
        res.end();
      });
      res.on('close', end);
    },
  );
}
