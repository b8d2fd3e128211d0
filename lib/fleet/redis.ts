/**
 * Redis connection settings of the fleet (URL, TLS, password) and the ioredis options made
 * from them. BullMQ makes its own connections from these options; the fleet's records and
 * its cancel/event channels use their own.
 * @module
 */
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'bullmq';
import type { Redis, RedisOptions } from 'ioredis';
import { z } from 'zod';
import { ConfigError, SmoothtaskError } from '../errors/index.js';

/** Redis connection settings. */
export const RedisConfigSchema = z
  .object({
    /** `redis://[user[:password]@]host[:port][/db]`, or `rediss://` for TLS. Default the local server. */
    url: z.string().min(1).default('redis://127.0.0.1:6379'),
    /** Password (overrides one in the URL); prefer this or an environment-supplied config to a URL in logs. */
    password: z.string().optional(),
    /** ACL user name (overrides one in the URL). */
    username: z.string().optional(),
    /** TLS (also switched on by a `rediss://` URL). */
    tls: z
      .object({
        /** PEM file of the CA that signed the server's certificate (default: the system's CAs). */
        caFile: z.string().optional(),
        /** Refuse a certificate that does not verify (default true; false only for tests). */
        rejectUnauthorized: z.boolean().default(true),
        /** Server name to verify (default the URL's host). */
        servername: z.string().optional(),
      })
      .strict()
      .optional(),
    /** Connect timeout of each connection. */
    connectTimeoutMs: z.number().int().positive().default(10_000),
  })
  .strict();
/** Redis connection settings (input form). */
export type RedisConfigInput = z.input<typeof RedisConfigSchema>;
/** Redis connection settings (defaults filled). */
export type RedisConfig = z.output<typeof RedisConfigSchema>;

/**
 * ioredis options for `config`: `maxRetriesPerRequest: null` (BullMQ's workers need it; commands
 * wait for a reconnect rather than fail) and a capped reconnect backoff.
 */
export function redisOptions(config: RedisConfig): RedisOptions {
  let u: URL;
  try {
    u = new URL(config.url);
  } catch (e) {
    throw new ConfigError(`Invalid Redis URL`, ['redis.url: not a URL'], { cause: e });
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new ConfigError(`Redis URL must be redis:// or rediss://`, [`redis.url: protocol ${u.protocol}`]);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0) throw new ConfigError('Invalid Redis database in the URL', [`redis.url: database '${u.pathname.slice(1)}'`]);
  const o: RedisOptions = {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port ? Number(u.port) : 6379,
    db,
    maxRetriesPerRequest: null,
    connectTimeout: config.connectTimeoutMs,
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
  };
  const user = config.username ?? (u.username ? decodeURIComponent(u.username) : undefined);
  const pass = config.password ?? (u.password ? decodeURIComponent(u.password) : undefined);
  if (user) o.username = user;
  if (pass) o.password = pass;
  if (u.protocol === 'rediss:' || config.tls) {
    const t = config.tls;
    o.tls = {
      rejectUnauthorized: t?.rejectUnauthorized ?? true,
      servername: t?.servername ?? o.host!,
      ...(t?.caFile ? { ca: readCa(t.caFile) } : {}),
    };
  }
  return o;
}

function readCa(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new ConfigError(`Cannot read the Redis CA file ${path}`, [`redis.tls.caFile: ${(e as Error).message}`], { cause: e });
  }
}

/** The same options for BullMQ (its own type for ioredis options; BullMQ opens its connections from them). */
export function bullConnection(config: RedisConfig): ConnectionOptions {
  return redisOptions(config) as ConnectionOptions;
}

/**
 * Resolves once `redis` is connected and authenticated; rejects with `ERR_FLEET_REDIS` (naming
 * the last connection error: refused, wrong password, TLS) when it is not within `timeoutMs`.
 * Commands on a connection that is not ready wait for it (a Redis restart is ridden out), so a
 * wrong address or password would otherwise show as a hang.
 */
export function waitReady(redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    let last: Error | undefined;
    const onError = (e: Error) => (last = e);
    const done = () => {
      clearTimeout(t);
      redis.off('ready', onReady);
      redis.off('error', onError);
    };
    const onReady = () => {
      done();
      resolve();
    };
    const t = setTimeout(() => {
      done();
      const where = `${redis.options.host ?? '?'}:${redis.options.port ?? '?'}`;
      reject(new SmoothtaskError('ERR_FLEET_REDIS', `Redis at ${where} is not ready after ${timeoutMs} ms${last ? `: ${last.message}` : ''}`, last ? { cause: last } : {}));
    }, timeoutMs);
    redis.on('ready', onReady);
    redis.on('error', onError);
  });
}
