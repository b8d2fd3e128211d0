import type { z } from 'zod';
import { ConfigError } from './index.js';

/**
 * Validates `value` against `schema` and returns the parsed value, or throws a
 * {@link ConfigError} whose message names every offending option path.
 * @internal
 */
export function validate<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`);
  throw new ConfigError(`Invalid ${what}: ${issues.join('; ')}`, issues);
}
