/**
 * A ready `node:http` request handler serving the node status as JSON.
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { validate } from '../errors/validate.js';
import { createNodeStatus, HEALTH_LEVELS, type HealthLevel, type NodeStatusOptions, type NodeStatusProvider } from './status.js';

/** Options of {@link createStatusHandler}. */
export interface StatusHandlerOptions {
  /** Health level from which the handler answers `unhealthyStatus` (default `unhealthy`; `degraded` is stricter). */
  failOn?: Exclude<HealthLevel, 'ok'>;
  /** HTTP status when failing (default 503). */
  unhealthyStatus?: number;
  /** Serve a cached status for this many ms (default 0: collect per request). */
  cacheMs?: number;
}

/** Zod schema of {@link StatusHandlerOptions}; parsing fills the defaults. */
export const StatusHandlerOptionsSchema: z.ZodType<Required<StatusHandlerOptions>, StatusHandlerOptions> = z
  .object({
    failOn: z.enum(['degraded', 'unhealthy']).default('unhealthy'),
    unhealthyStatus: z.number().int().min(100).max(599).default(503),
    cacheMs: z.number().int().min(0).default(0),
  })
  .strict();

/** What the handler is: `(req, res) => void`, usable with `http.createServer` or a router. */
export type StatusHandler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * Creates a handler that answers GET/HEAD with the status as JSON: 200 when healthy enough,
 * `unhealthyStatus` (503) at `failOn` or worse, 405 for other methods, 500 when collecting
 * fails. It does not route: mount it on the path you want.
 */
export function createStatusHandler(source: NodeStatusProvider | NodeStatusOptions = {}, options: StatusHandlerOptions = {}): StatusHandler {
  const o = validate(StatusHandlerOptionsSchema, options, 'status handler options');
  const provider = 'get' in source && typeof source.get === 'function' ? (source as NodeStatusProvider) : createNodeStatus(source as NodeStatusOptions);
  const rank: readonly string[] = HEALTH_LEVELS;
  let cache: { at: number; p: ReturnType<NodeStatusProvider['get']> } | undefined;
  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (!cache || Date.now() - cache.at > o.cacheMs) cache = { at: Date.now(), p: provider.get() };
    const p = cache.p;
    p.then(
      (status) => {
        const failing = rank.indexOf(status.health.status) >= rank.indexOf(o.failOn);
        const body = JSON.stringify(status);
        res.writeHead(failing ? o.unhealthyStatus : 200, {
          'content-type': 'application/json; charset=utf-8',
          'cache-control': 'no-store',
          'content-length': Buffer.byteLength(body),
        });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (e: unknown) => {
        if (cache?.p === p) cache = undefined;
        const body = JSON.stringify({ error: e instanceof Error ? e.message : String(e) });
        res.writeHead(500, { 'content-type': 'application/json; charset=utf-8' }).end(body);
      },
    );
  };
}
