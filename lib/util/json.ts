/**
 * JSON values and their zod schema, shared by the task record, webhooks and the agent.
 * Internal; re-exported from `smoothtask/task`, where they have always been public.
 * @module
 */
import { z } from 'zod';

/** A JSON value (what a task spec, result and info may hold, since they are persisted). */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** Zod schema of {@link JsonValue}. */
export const JsonValueSchema: z.ZodType<JsonValue> = z.lazy(() =>
  z.union([z.string(), z.number(), z.boolean(), z.null(), z.array(JsonValueSchema), z.record(z.string(), JsonValueSchema)]),
);
