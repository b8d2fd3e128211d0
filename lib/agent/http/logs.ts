/**
 * Log routes: the whole log, byte ranges (206), and live follow as Server-Sent Events or
 * NDJSON, from any byte offset, until the task has finished and the log is drained.
 * @module
 */
import { createReadStream } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { isFinished } from '../../task/states.js';
import type { TaskRecord } from '../../task/types.js';
import { AgentError } from '../errors.js';
import { ErrorBodySchema } from './errors.js';
import type { AgentRuntime } from './routes.js';
import { TaskParams } from './schemas.js';
import { taskOr404 } from './tasks.js';

const E = ErrorBodySchema;

/** @internal Heartbeat period of follow streams (SSE comment lines). */
export const HEARTBEAT_MS = 15_000;
/** @internal A client that does not take a chunk within this time is dropped. */
export const SLOW_CLIENT_MS = 30_000;
const CHUNK = 64 * 1024;

const LogQuery = z
  .object({
    stream: z.enum(['combined', 'stdout', 'stderr']).default('combined').describe('Which log: both streams in arrival order, or one'),
    service: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, 'a compose service name')
      .optional()
      .describe('Compose tasks: one service (with stream=stdout or stderr)'),
    follow: z.stringbool().default(false).describe('Keep the response open and send what is appended until the task ends'),
    offset: z.coerce.number().int().min(0).default(0).describe('Follow from this byte offset (Last-Event-ID wins)'),
  })
  .strict();

/** The log file a query names, or `undefined` while the task has none yet. */
function logFile(t: Readonly<TaskRecord>, stream: 'combined' | 'stdout' | 'stderr', service: string | undefined): string | undefined {
  if (service !== undefined) {
    if (stream === 'combined') {
      throw new AgentError('ERR_VALIDATION', 'service logs are kept per stream: add stream=stdout or stream=stderr', {
        status: 400,
        issues: [{ path: 'querystring.stream', message: 'must be stdout or stderr with service' }],
      });
    }
    if (t.kind !== 'compose' && t.kind !== 'container') {
      throw new AgentError('ERR_VALIDATION', `service logs exist for compose tasks only, not '${t.kind}'`, { status: 400, issues: [{ path: 'querystring.service', message: 'not a compose task' }] });
    }
    // dockerTaskLayout: `<workspace>/docker-logs/<source>.<stream>.log`
    return t.workspace ? join(t.workspace, 'docker-logs', `${service}.${stream}.log`) : undefined;
  }
  return stream === 'combined' ? t.logPath : t.logs?.[stream];
}

/** Parses a single `bytes=` range against `size`: `[start, end]`, `'unsatisfiable'`, or `undefined` (ignore the header). */
export function parseRange(header: string | undefined, size: number): [number, number] | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) return 'unsatisfiable';
    return size === 0 ? 'unsatisfiable' : [Math.max(0, size - n), size - 1];
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || (m[2] !== '' && Number(m[2]) < start)) return 'unsatisfiable';
  return [start, end];
}

/** Length of the longest prefix of `b` that ends on a UTF-8 character boundary (all of it when the tail is not a partial character). */
function utf8Boundary(b: Buffer): number {
  const n = b.length;
  for (let back = 1; back <= Math.min(3, n); back++) {
    const c = b[n - back]!;
    if ((c & 0xc0) === 0x80) continue; // continuation byte: look further back
    const need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    return need > back ? n - back : n;
  }
  return n;
}

/** Writes `data`; when the socket is full waits for `drain`, and gives up (false) when the client stays slow or goes. */
function write(res: ServerResponse, data: string, signal: AbortSignal): Promise<boolean> {
  if (res.destroyed || signal.aborted) return Promise.resolve(false);
  if (res.write(data)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(t);
      res.off('drain', onDrain);
      signal.removeEventListener('abort', onAbort);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onAbort = () => done(false);
    const t = setTimeout(() => {
      // A client that takes nothing for SLOW_CLIENT_MS is dropped: nothing piles up for it.
      res.destroy();
      done(false);
    }, SLOW_CLIENT_MS);
    res.on('drain', onDrain);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** @internal Registers the log routes. */
export function logRoutes(app: FastifyInstance, rt: AgentRuntime): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/v1/tasks/:id/logs',
    {
      config: { scope: 'read' },
      schema: {
        summary: "A task's log: whole, a byte range, or followed live",
        description:
          'Without follow: text/plain, the whole file or one `Range: bytes=a-b` (206; 416 when unsatisfiable). ' +
          'With follow=true: `Accept: text/event-stream` gives SSE (`id:` = byte offset after the chunk, resume with Last-Event-ID, ' +
          '`: heartbeat` every 15 s, `event: log` with data `{offset,stream,data}`, final `event: end` with `{end:true,state}`); ' +
          'otherwise NDJSON lines `{"offset":n,"stream":"stdout","data":"..."}` then `{"end":true,"state":"..."}`. ' +
          'The stream ends when the task has finished and the log is drained (an agent shutting down ends it without the end line).',
        tags: ['logs'],
        security: [{ bearer: [] }],
        params: TaskParams,
        querystring: LogQuery,
        headers: z.object({ range: z.string().optional(), 'last-event-id': z.string().optional(), accept: z.string().optional() }),
        response: {
          200: {
            description: 'The log (text/plain); with follow=true the live stream: NDJSON, or SSE when Accept: text/event-stream',
            content: {
              'text/plain': { schema: z.string() },
              'application/x-ndjson': { schema: z.string().describe('Lines {"offset","stream","data"}, then {"end":true,"state","offset"}') },
              'text/event-stream': { schema: z.string().describe('event: log (id = byte offset), heartbeats, then event: end') },
            },
          },
          206: { description: 'The requested byte range (Content-Range: bytes a-b/total)', content: { 'text/plain': { schema: z.string() } } },
          400: E,
          401: E,
          403: E,
          404: E,
          416: E,
        },
      },
    },
    async (request, reply) => {
      const t = taskOr404(rt, request.params.id);
      const q = request.query;
      const initial = logFile(t, q.stream, q.service);
      if (!q.follow) {
        const path = initial;
        const size = path ? await stat(path).then((s) => s.size, () => -1) : -1;
        if (size < 0 && q.service !== undefined && isFinished(t.state)) {
          throw new AgentError('ERR_NO_LOG', `Task '${t.id}' has no log of a service '${q.service}'`, { status: 404 });
        }
        // Not written yet (a task that has not started or printed): empty.
        if (size < 0) return reply.type('text/plain; charset=utf-8').header('accept-ranges', 'bytes').send('');
        const range = parseRange(request.headers.range, size);
        if (range === 'unsatisfiable') {
          throw new AgentError('ERR_RANGE_NOT_SATISFIABLE', `Range ${request.headers.range} is outside the log (${size} bytes)`, { status: 416, headers: { 'content-range': `bytes */${size}` } });
        }
        const [start, end] = range ?? [0, size - 1];
        reply.type('text/plain; charset=utf-8').header('accept-ranges', 'bytes').header('cache-control', 'no-store');
        if (range) reply.code(206).header('content-range', `bytes ${start}-${end}/${size}`);
        reply.header('content-length', String(Math.max(0, end - start + 1)));
        if (end < start) return reply.send('');
        return reply.send(createReadStream(path!, { start, end }) as unknown as string);
      }

      let offset = q.offset;
      const lastId = request.headers['last-event-id'];
      if (lastId !== undefined) {
        if (!/^\d{1,15}$/.test(lastId.trim())) {
          throw new AgentError('ERR_VALIDATION', 'Last-Event-ID must be a byte offset', { status: 400, issues: [{ path: 'headers.last-event-id', message: 'not a byte offset' }] });
        }
        offset = Number(lastId.trim());
      }
      const sse = (request.headers.accept ?? '').includes('text/event-stream');
      const id = t.id;
      const streamName = q.service ? `${q.service}:${q.stream}` : q.stream;
      reply.hijack();
      const res = reply.raw;
      request.raw.socket.setTimeout(0);
      res.writeHead(200, {
        ...(reply.getHeaders() as Record<string, string>), // CORS headers set by the hooks, when configured
        'content-type': sse ? 'text/event-stream; charset=utf-8' : 'application/x-ndjson; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        'x-accel-buffering': 'no',
        connection: 'keep-alive',
      });
      res.flushHeaders();
      const ac = new AbortController();
      res.on('close', () => ac.abort());
      const untrack = rt.streams.add(
        res,
        () => {
          ac.abort();
          res.end();
        },
        () => {
          const cur = rt.queue.get(id);
          return !cur || isFinished(cur.state);
        },
      );
      let wake: (() => void) | undefined;
      const poke = () => wake?.();
      const offLog = rt.queue.onLog((e) => e.taskId === id && poke());
      const offTr = rt.queue.onTransition((e) => e.task.id === id && poke());
      ac.signal.addEventListener('abort', poke, { once: true });
      const hb = sse
        ? setInterval(() => {
            if (!res.writableNeedDrain) res.write(': heartbeat\n\n');
          }, HEARTBEAT_MS)
        : undefined;
      hb?.unref();
      const frame = (obj: object, event: string, evId?: number) =>
        sse ? `${evId !== undefined ? `id: ${evId}\n` : ''}event: ${event}\ndata: ${JSON.stringify(obj)}\n\n` : `${JSON.stringify(obj)}\n`;
      let fh: FileHandle | undefined;
      const buf = Buffer.allocUnsafe(CHUNK);
      try {
        if (sse) res.write(': follow\n\n'); // flushes the headers at once
        for (;;) {
          if (ac.signal.aborted) return;
          const rec = rt.queue.get(id);
          // Observed before reading: once finished and a read returns nothing, everything was read.
          const final = !rec || isFinished(rec.state);
          const path = rec ? logFile(rec, q.stream, q.service) : undefined;
          let n = 0;
          if (path) {
            try {
              fh ??= await open(path, 'r');
              ({ bytesRead: n } = await fh.read(buf, 0, CHUNK, offset));
            } catch (e) {
              if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
            }
          }
          if (n > 0) {
            // Whole characters only (unless the file ends in a broken one and the task is over).
            let take = utf8Boundary(buf.subarray(0, n));
            if (take === 0) take = n;
            const data = buf.toString('utf8', 0, take);
            offset += take;
            if (!(await write(res, frame({ offset, stream: streamName, data }, 'log', offset), ac.signal))) return;
            continue;
          }
          if (final) {
            await write(res, frame({ end: true, state: rec ? (rec.outcome ?? rec.state) : 'deleted', offset }, 'end'), ac.signal);
            res.end();
            return;
          }
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, 250);
            wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          wake = undefined;
        }
      } catch (e) {
        request.log.warn({ err: e }, 'log follow failed');
        res.destroy();
      } finally {
        clearInterval(hb);
        offLog();
        offTr();
        untrack();
        await fh?.close().catch(() => {});
      }
    },
  );
}
