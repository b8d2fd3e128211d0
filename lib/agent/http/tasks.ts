/**
 * Task routes: submit, list, get, cancel, delete.
 * @module
 */
import { rm } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ConfigError } from '../../errors/index.js';
import { validate } from '../../errors/validate.js';
import { ProcessSpecSchema } from '../../process/executor.js';
import { ComposeTaskSpecSchema, ContainerTaskSpecSchema } from '../../docker/spec.js';
import { isFinished, TASK_STATES, type TaskState } from '../../task/states.js';
import { TaskNotFoundError, TaskNotHeldError } from '../../task/errors.js';
import type { TaskRecord } from '../../task/types.js';
import type { JsonValue } from '../../util/json.js';
import { AgentError } from '../errors.js';
import { checkPolicy, withLimits } from '../policy.js';
import { ErrorBodySchema } from './errors.js';
import type { AgentRuntime } from './routes.js';
import { ListAnswer, ListQuery, SubmitBody, TaskEnvelope, TaskParams } from './schemas.js';
import { within } from '../../util/within.js';

const SPEC_SCHEMAS: Record<string, z.ZodType> = {
  // Strict for remote callers: an unknown field is an error, not silently dropped.
  process: ProcessSpecSchema.strict(),
  container: ContainerTaskSpecSchema,
  compose: ComposeTaskSpecSchema,
};

const E = ErrorBodySchema;

/** @internal Looks a task up or throws the 404. */
export function taskOr404(rt: AgentRuntime, id: string): Readonly<TaskRecord> {
  const t = rt.queue.get(id);
  if (!t) throw new TaskNotFoundError(id);
  return t;
}

const encodeCursor = (t: Pick<TaskRecord, 'id' | 'timings'>): string => Buffer.from(JSON.stringify([t.timings.createdAt, t.id])).toString('base64url');
function decodeCursor(c: string): [number, string] {
  try {
    const v = JSON.parse(Buffer.from(c, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'number' && typeof v[1] === 'string') return [v[0], v[1]];
  } catch {
    /* answered below */
  }
  throw new AgentError('ERR_VALIDATION', 'Invalid cursor: use nextCursor from the previous page', { status: 400, issues: [{ path: 'querystring.cursor', message: 'not a cursor of this API' }] });
}

/** @internal Registers the task routes. */
export function taskRoutes(app: FastifyInstance, rt: AgentRuntime): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const cfg = rt.config;
  const security = [{ bearer: [] }];

  r.post(
    '/v1/tasks',
    {
      bodyLimit: cfg.http.bodyLimitBytes,
      config: { scope: 'submit' },
      schema: {
        summary: 'Submit a task',
        description:
          'Validated by the body schema (400 with the zod issues), the executor spec schema (400), then the agent policy (403 with `rule`). ' +
          '429 with Retry-After when `queue.maxQueued` tasks are waiting; 409 when the id exists.',
        tags: ['tasks'],
        security,
        body: SubmitBody,
        response: { 201: TaskEnvelope, 400: E, 401: E, 403: E, 409: E, 413: E, 415: E, 429: E, 503: E },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const specSchema = SPEC_SCHEMAS[b.kind];
      if (!rt.queue.hasExecutor(b.kind)) {
        throw new AgentError('ERR_UNKNOWN_TASK_KIND', `Task kind '${b.kind}' is not enabled on this agent`, {
          status: 400,
          issues: [{ path: 'body.kind', message: `not enabled (enabled: ${['process', 'container', 'compose'].filter((k) => rt.queue.hasExecutor(k)).join(', ') || 'none'})` }],
        });
      }
      // Spec shape first (400), then the policy on the parsed spec (403): nothing is created before both pass.
      const parsed = specSchema ? (validate(specSchema, b.spec ?? null, `'${b.kind}' task spec`) as Record<string, unknown>) : {};
      const decision = checkPolicy(cfg.policy, cfg.queue.defaultTimeoutMs, { kind: b.kind, spec: parsed, timeoutMs: b.timeoutMs });
      if (b.id !== undefined && rt.queue.get(b.id)) throw new AgentError('ERR_TASK_EXISTS', `A task with id '${b.id}' already exists`, { status: 409 });
      const s = rt.queue.stats();
      // Held tasks wait too (for their inputs): they count against the same bound.
      const waiting = s.pending + s.retrying + rt.queue.list({ state: 'created' }).filter((t) => t.held).length;
      if (waiting >= cfg.queue.maxQueued) {
        const retryAfter = Math.min(60, Math.max(1, Math.ceil(waiting / cfg.queue.concurrency)));
        throw new AgentError('ERR_QUEUE_FULL', `The queue is full: ${waiting} tasks are waiting (queue.maxQueued ${cfg.queue.maxQueued})`, {
          status: 429,
          headers: { 'retry-after': String(retryAfter) },
        });
      }
      let h;
      try {
        h = rt.queue.submit({
          kind: b.kind,
          spec: withLimits((b.spec ?? null) as JsonValue, decision.limits),
          ...(b.id !== undefined ? { id: b.id } : {}),
          ...(b.priority !== undefined ? { priority: b.priority } : {}),
          ...(b.labels !== undefined ? { labels: b.labels } : {}),
          timeoutMs: decision.timeoutMs,
          ...(b.retry !== undefined ? { retry: b.retry } : {}),
          ...(b.killAfterMs !== undefined ? { killAfterMs: b.killAfterMs } : {}),
          hold: b.hold ?? false,
        });
      } catch (e) {
        if (e instanceof ConfigError && /already exists/.test(e.message)) throw new AgentError('ERR_TASK_EXISTS', e.message, { status: 409 });
        throw e;
      }
      const task = rt.queue.get(h.id)!;
      return reply.code(201).header('location', `${app.prefix}/v1/tasks/${encodeURIComponent(h.id)}`).send({ task });
    },
  );

  r.get(
    '/v1/tasks',
    {
      config: { scope: 'read' },
      schema: {
        summary: 'List tasks',
        description: 'Filtered by state (comma-separated), kind and labels; ordered by creation time then id; paged with an opaque cursor.',
        tags: ['tasks'],
        security,
        querystring: ListQuery,
        response: { 200: ListAnswer, 400: E, 401: E, 403: E },
      },
    },
    async (request) => {
      const q = request.query;
      const states = q.state?.split(',').filter((s): s is TaskState => (TASK_STATES as readonly string[]).includes(s));
      const labels = q.label ? Object.fromEntries(q.label.split(',').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])) : undefined;
      const after = q.cursor === undefined ? undefined : decodeCursor(q.cursor);
      let items = rt.queue.list({ ...(states ? { state: states } : {}), ...(labels ? { labels } : {}) }).filter((t) => q.kind === undefined || t.kind === q.kind);
      items.sort((a, b) => a.timings.createdAt - b.timings.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      if (after) items = items.filter((t) => t.timings.createdAt > after[0] || (t.timings.createdAt === after[0] && t.id > after[1]));
      const page = items.slice(0, q.limit);
      const nextCursor = items.length > q.limit ? encodeCursor(page[page.length - 1]!) : null;
      return { items: page as TaskRecord[], nextCursor };
    },
  );

  r.get(
    '/v1/tasks/:id',
    {
      config: { scope: 'read' },
      schema: { summary: 'Get a task (record with its history)', tags: ['tasks'], security, params: TaskParams, response: { 200: TaskEnvelope, 400: E, 401: E, 403: E, 404: E } },
    },
    async (request) => ({ task: taskOr404(rt, request.params.id) as TaskRecord }),
  );

  r.post(
    '/v1/tasks/:id/cancel',
    {
      config: { scope: 'submit' },
      bodyLimit: 1024,
      schema: {
        summary: 'Cancel a task',
        description: 'A waiting task is cancelled at once; a running one is stopped (SIGTERM, then SIGKILL after killAfterMs). 409 if it had finished.',
        tags: ['tasks'],
        security,
        params: TaskParams,
        response: { 202: TaskEnvelope, 400: E, 401: E, 403: E, 404: E, 409: E },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const before = taskOr404(rt, id).state;
      const ok = await rt.queue.cancel(id, `cancelled over HTTP by ${request.principal?.name ?? 'anonymous'}`);
      if (!ok) throw new AgentError('ERR_TASK_FINISHED', `Task '${id}' has already finished (state ${rt.queue.get(id)?.state})`, { status: 409 });
      // A waiting task (held, queued, between retries) is cancelled at once: answer with its
      // final record, so a DELETE right after finds it finished. A running one is only asked
      // to stop; the answer does not wait for its processes.
      if (before === 'created' || before === 'queued' || before === 'retrying') {
        await within(rt.queue.wait(id), 5_000);
      }
      return reply.code(202).send({ task: rt.queue.get(id) as TaskRecord });
    },
  );

  r.post(
    '/v1/tasks/:id/start',
    {
      config: { scope: 'submit' },
      bodyLimit: 1024,
      schema: {
        summary: 'Start a task submitted with hold (its inputs are uploaded)',
        description: 'Queues the task: `created` to `queued` (history reason `released`); it runs in its turn. 409 when the task is not held (submitted without `hold`, already started, or cancelled).',
        tags: ['tasks', 'files'],
        security,
        params: TaskParams,
        response: { 202: TaskEnvelope, 400: E, 401: E, 403: E, 404: E, 409: E },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      taskOr404(rt, id);
      try {
        await rt.queue.release(id);
      } catch (e) {
        if (e instanceof TaskNotHeldError) throw new AgentError(e.code, e.message, { status: 409, cause: e });
        throw e;
      }
      return reply.code(202).send({ task: rt.queue.get(id) as TaskRecord });
    },
  );

  r.delete(
    '/v1/tasks/:id',
    {
      config: { scope: 'admin' },
      schema: {
        summary: 'Delete a finished task: its record, logs and workspace',
        tags: ['tasks'],
        security,
        params: TaskParams,
        response: { 204: z.null().describe('Deleted (no body)'), 400: E, 401: E, 403: E, 404: E, 409: E },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const t = taskOr404(rt, id);
      if (!isFinished(t.state)) throw new AgentError('ERR_TASK_NOT_FINISHED', `Task '${id}' is ${t.state}: cancel it and wait for it to finish first`, { status: 409 });
      const workspace = t.workspace;
      // forget() waits for the triggers' last save, so the document is not written back after.
      await rt.queue.forget(id);
      const root = resolve(rt.workspaces);
      if (workspace) {
        const ws = resolve(workspace);
        // Only ever a direct child of the agent's workspace root.
        if (ws.startsWith(root + sep) && !ws.slice(root.length + 1).includes(sep)) await rm(ws, { recursive: true, force: true });
      } else {
        await rm(join(root, id), { recursive: true, force: true });
      }
      rt.artifacts.forget(id);
      rt.files.forget(id);
      return reply.code(204).send(null);
    },
  );
}
