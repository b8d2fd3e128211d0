/**
 * The HTTP API's zod schemas (request bodies, querystrings, params, responses), built from the
 * library's own schemas; the OpenAPI document is generated from them.
 * @module
 */
import { z } from 'zod';
import { TASK_STATES } from '../../task/states.js';
import { TaskIdSchema, TaskRecordSchema } from '../../task/types.js';
import { JsonValueSchema } from '../../util/json.js';

// The JSON value schema is recursive (z.lazy): without an id its self-reference becomes a
// dangling `__shared#/$defs` pointer in the document. Registered once, on the library's own
// instance, it becomes the `JsonValue` component.
if (!z.globalRegistry.has(JsonValueSchema)) z.globalRegistry.add(JsonValueSchema, { id: 'JsonValue', description: 'Any JSON value.' });

/** @internal A task record as the API answers it (the store's schema). */
export const TaskRecordOut = TaskRecordSchema.meta({ id: 'TaskRecord', description: 'A task: spec, state, history of transitions, timings, result.' });

/** @internal `:id` of task routes: one safe path component (no `..`, `/`, NUL). */
export const TaskParams = z.object({ id: TaskIdSchema.describe('Task id: a letter or digit, then letters, digits, . _ -') }).strict();

const LabelKey = z.string().min(1).max(100).regex(/^[A-Za-z0-9][A-Za-z0-9._/-]*$/, 'label keys: letters, digits, . _ / -');

/** @internal Body of `POST /v1/tasks`. */
export const SubmitBody = z
  .object({
    /** Executor kind: `process`, `container`, `compose` (as enabled in the agent config). */
    kind: z.string().min(1).max(64),
    /** The executor's spec (JSON). */
    spec: JsonValueSchema.optional(),
    /** Task id (default: a random UUID). */
    id: TaskIdSchema.optional(),
    /** Higher runs first. */
    priority: z.number().int().min(-1_000_000).max(1_000_000).optional(),
    /** Free-form labels (at most 64). */
    labels: z
      .record(LabelKey, z.string().max(1000))
      .refine((l) => Object.keys(l).length <= 64, 'at most 64 labels')
      .optional(),
    /** Per-attempt time limit, ms (capped by the policy). */
    timeoutMs: z.number().int().positive().optional(),
    /** Retries: `true` for the defaults, or a policy. */
    retry: z
      .union([
        z.literal(true),
        z
          .object({
            maxAttempts: z.number().int().min(1).max(100).optional(),
            baseMs: z.number().min(0).max(3_600_000).optional(),
            maxMs: z.number().min(0).max(86_400_000).optional(),
            factor: z.number().min(1).max(100).optional(),
            on: z.array(z.enum(['failed', 'timed_out'])).optional(),
          })
          .strict(),
      ])
      .optional(),
    /** Grace between SIGTERM and SIGKILL, ms. */
    killAfterMs: z.number().int().min(0).max(600_000).optional(),
    /**
     * Wait for inputs: the task is recorded `created` and does not run until
     * `POST /v1/tasks/{id}/start` (upload its files to `inputs/` first).
     */
    hold: z.boolean().optional().describe('Wait for inputs: stays `created` until POST /v1/tasks/{id}/start (upload to inputs/ first)'),
  })
  .strict()
  .meta({ id: 'SubmitTask' });

/** @internal `{ task }`. */
export const TaskEnvelope = z.object({ task: TaskRecordOut });

/** @internal Querystring of `GET /v1/tasks`. */
export const ListQuery = z
  .object({
    state: z
      .string()
      .regex(new RegExp(`^(${TASK_STATES.join('|')})(,(${TASK_STATES.join('|')}))*$`), `comma-separated states among ${TASK_STATES.join(', ')}`)
      .optional()
      .describe('Comma-separated states'),
    kind: z.string().min(1).max(64).optional(),
    label: z
      .string()
      .regex(/^[^=,]+=[^,]*(,[^=,]+=[^,]*)*$/, 'k=v[,k2=v2]')
      .optional()
      .describe('Label filter k=v, comma-separated for several (all must match)'),
    limit: z.coerce.number().int().min(1).max(500).default(50),
    cursor: z.string().max(500).optional().describe('Opaque cursor from the previous page (nextCursor)'),
  })
  .strict();

/** @internal Answer of `GET /v1/tasks`. */
export const ListAnswer = z.object({ items: z.array(TaskRecordOut), nextCursor: z.string().nullable() });
