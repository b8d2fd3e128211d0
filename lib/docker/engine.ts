import type Docker from 'dockerode';
import { z } from 'zod';
import { validate } from '../errors/validate.js';
import { DockerError, DockerUnavailableError } from './errors.js';
import { isValidOwnerId, newOwnerId } from './labels.js';
import { importPeer } from '../util/peer.js';

/** Options of {@link connectDocker}. */
export const DockerEngineOptionsSchema = z
  .object({
    /** Unix socket of the engine. Default: `$DOCKER_HOST` when it is `unix://…`, else /var/run/docker.sock. */
    socketPath: z.string().min(1).optional(),
    /** Timeout of the initial ping in ms. */
    pingTimeoutMs: z.number().int().positive().default(5_000),
    /**
     * Owner id written on every resource (label `smoothtask.owner`); cleanup, the reaper and
     * compose teardown touch only resources of this owner. Give each queue its own, and keep it
     * across restarts (`persistentOwnerId(storeDir)`) so that a restart recognises its leftovers.
     * Default: a new random id (`st-` + 16 hex digits) per engine.
     */
    ownerId: z.string().refine(isValidOwnerId, 'owner id: 1-128 of [A-Za-z0-9._:@-], starting alphanumeric').optional(),
  })
  .strict();
/** Input type of {@link DockerEngineOptionsSchema}. */
export type DockerEngineOptions = z.input<typeof DockerEngineOptionsSchema>;

/** A connected Docker Engine client plus the identity this process labels resources with. */
export interface DockerEngine {
  /**
   * The dockerode client (full Engine API), typed `unknown` so that smoothtask's types never
   * need `@types/dockerode` (a dockerode install has no types of its own). To call it, install
   * `@types/dockerode` and cast: `const docker = engine.docker as import('dockerode')`.
   */
  readonly docker: unknown;
  /** The socket path in use. */
  readonly socketPath: string;
  /** The owner id put on every resource created through this engine; cleanup touches only this owner's. */
  readonly ownerId: string;
  /** Pings the engine; rejects with {@link DockerUnavailableError} when it does not answer. */
  ping(signal?: AbortSignal): Promise<void>;
}

/** The dockerode client of an engine made by {@link connectDocker}, with dockerode's types. @internal */
export function dockerode(engine: DockerEngine): Docker {
  return engine.docker as Docker;
}

/**
 * Loads dockerode, an optional peer dependency: absent, it rejects with a typed
 * `MissingPeerError` (code `ERR_MISSING_PEER`) that names the install command.
 */
async function loadDockerode(): Promise<typeof Docker> {
  const m = await importPeer('smoothtask/docker (connectDocker)', ['dockerode'], () => import('dockerode'));
  return (m as { default?: typeof Docker }).default ?? (m as unknown as typeof Docker);
}

function defaultSocket(): string {
  const h = process.env.DOCKER_HOST;
  if (h?.startsWith('unix://')) return h.slice('unix://'.length);
  return '/var/run/docker.sock';
}

const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'EPERM', 'ECONNRESET', 'ETIMEDOUT', 'ABORT_ERR']);

/** Converts an error from dockerode into a typed smoothtask error. @internal */
export function toDockerError(err: unknown, socketPath: string, what: string): Error {
  if (err instanceof DockerUnavailableError || err instanceof DockerError) return err;
  const e = err as { code?: string; statusCode?: number; message?: string; json?: { message?: string } };
  if (e?.code && UNAVAILABLE_CODES.has(e.code) && e.statusCode === undefined) return new DockerUnavailableError(socketPath, { cause: err });
  const msg = e?.json?.message ?? e?.message ?? String(err);
  return new DockerError(`${what}: ${msg}`, { cause: err, ...(e?.statusCode !== undefined ? { statusCode: e.statusCode } : {}) });
}

/**
 * Connects to the Docker Engine and pings it.
 *
 * @throws {@link DockerUnavailableError} when the engine does not answer within `pingTimeoutMs`.
 * @throws `MissingPeerError` (code `ERR_MISSING_PEER`) when the optional peer dependency
 * `dockerode` is not installed.
 * @example
 * ```ts
 * const engine = await connectDocker();
 * ```
 */
export async function connectDocker(options: DockerEngineOptions = {}): Promise<DockerEngine> {
  const o = validate(DockerEngineOptionsSchema, options, 'Docker engine options');
  const socketPath = o.socketPath ?? defaultSocket();
  const Dockerode = await loadDockerode();
  const docker = new Dockerode({ socketPath });
  const engine: DockerEngine = {
    docker,
    socketPath,
    ownerId: o.ownerId ?? newOwnerId(),
    async ping(signal?: AbortSignal) {
      const timeout = AbortSignal.timeout(o.pingTimeoutMs);
      const s = signal ? AbortSignal.any([signal, timeout]) : timeout;
      try {
        // @types/dockerode lacks the options overload that dockerode 4 accepts.
        await (docker.ping as unknown as (o: { abortSignal: AbortSignal }) => Promise<unknown>).call(docker, { abortSignal: s });
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        throw new DockerUnavailableError(socketPath, { cause: err });
      }
    },
  };
  await engine.ping();
  return engine;
}
