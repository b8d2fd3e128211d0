/**
 * Maps every error the API can meet to `{ error: { code, message, issues?, rule? } }` and a status.
 * @module
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ConfigError, SmoothtaskError } from '../../errors/index.js';
import { AgentError, PolicyViolationError } from '../errors.js';

/** One problem of a refused request: where (a JSON path) and what. */
export const IssueSchema = z.object({
  /** Where, as a dotted path (`body.spec.command`), or `(root)`. */
  path: z.string(),
  /** What is wrong. */
  message: z.string(),
});

/** The body of every error answer. */
export const ErrorBodySchema = z
  .object({
    error: z.object({
      /** Stable code, e.g. `ERR_VALIDATION`, `ERR_POLICY`, `ERR_TASK_NOT_FOUND`. */
      code: z.string(),
      /** What went wrong, for humans. */
      message: z.string(),
      /** Each problem, for validation errors. */
      issues: z.array(IssueSchema).optional(),
      /** The policy rule that refused the request (403 `ERR_POLICY`). */
      rule: z.string().optional(),
    }),
  })
  .meta({ id: 'Error', description: 'Every 4xx/5xx answer of the agent.' });

/** The body of an error answer. */
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

const LIB_STATUS: Record<string, number> = {
  ERR_TASK_NOT_FOUND: 404,
  ERR_UNKNOWN_TASK_KIND: 400,
  ERR_QUEUE_CLOSED: 503,
  ERR_SSRF_BLOCKED: 403,
};

const FASTIFY_CODES: Record<string, [number, string]> = {
  FST_ERR_CTP_BODY_TOO_LARGE: [413, 'ERR_BODY_TOO_LARGE'],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, 'ERR_UNSUPPORTED_MEDIA_TYPE'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, 'ERR_BAD_REQUEST'],
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, 'ERR_MALFORMED_JSON'],
  FST_ERR_CTP_INVALID_JSON_BODY: [400, 'ERR_MALFORMED_JSON'],
};

const issuePath = (p: string): string => (p === '' ? '(root)' : p);

/** The status, headers and body answered for `err`. */
export function errorAnswer(err: unknown): { status: number; headers: Record<string, string>; body: ErrorBody } {
  const answer = (status: number, code: string, message: string, extra: Partial<ErrorBody['error']> = {}, headers: Record<string, string> = {}) => ({
    status,
    headers,
    body: { error: { code, message, ...extra } },
  });
  if (err instanceof PolicyViolationError) return answer(403, err.code, err.message, { rule: err.rule });
  if (err instanceof AgentError) {
    const issues = err.issues as ErrorBody['error']['issues'] | undefined;
    return answer(err.status, err.code, err.message, issues ? { issues } : {}, err.headers);
  }
  if (hasZodFastifySchemaValidationErrors(err)) {
    const where = (err as { validationContext?: string }).validationContext ?? 'request';
    const issues = err.validation.map((v) => {
      const path = [where, ...v.instancePath.split('/').filter(Boolean)].join('.');
      const keys = (v.params as { issue?: { keys?: string[] } }).issue?.keys;
      return { path: issuePath(path), message: keys?.length ? `${v.message}: ${keys.join(', ')}` : v.message ?? 'invalid' };
    });
    return answer(400, 'ERR_VALIDATION', `Invalid ${where}: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, { issues });
  }
  if (isResponseSerializationError(err)) return answer(500, 'ERR_INTERNAL', 'The response did not match its schema');
  if (err instanceof ConfigError) {
    const issues = err.issues.map((s) => {
      const i = s.indexOf(': ');
      return i < 0 ? { path: '(root)', message: s } : { path: `body.spec.${s.slice(0, i)}`.replace('.(root)', ''), message: s.slice(i + 2) };
    });
    return answer(400, 'ERR_VALIDATION', err.message, { issues });
  }
  if (err instanceof SmoothtaskError) {
    const status = LIB_STATUS[err.code];
    if (status) return answer(status, err.code, err.message);
    return answer(500, err.code, err.message);
  }
  const fe = err as Partial<FastifyError> & { message?: string };
  if (fe.code && FASTIFY_CODES[fe.code]) {
    const [status, code] = FASTIFY_CODES[fe.code]!;
    return answer(status, code, fe.message ?? code);
  }
  if (err instanceof SyntaxError && (fe.statusCode === 400 || fe.statusCode === undefined)) {
    return answer(400, 'ERR_MALFORMED_JSON', `Malformed JSON body: ${err.message}`);
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return answer(fe.statusCode, 'ERR_BAD_REQUEST', fe.message ?? 'Bad request');
  }
  return answer(500, 'ERR_INTERNAL', 'Internal error');
}

/** Fastify error handler answering with {@link errorAnswer}. */
export function errorHandler(err: unknown, request: FastifyRequest, reply: FastifyReply): void {
  const a = errorAnswer(err);
  if (a.status >= 500 && a.body.error.code === 'ERR_INTERNAL') request.log.error({ err }, 'agent request failed');
  if (a.status === 401) reply.header('www-authenticate', 'Bearer');
  void reply.code(a.status).headers(a.headers).type('application/json; charset=utf-8').send(a.body);
}
