/**
 * Artifact downloads: the task's ZIP, streamed, with Content-Length, `x-checksum-sha256` and an
 * ETag (the SHA-256 is computed once per file version, cached in memory and in a
 * `<zip>.sha256` sidecar that survives restarts).
 * @module
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { zipDirectory } from '../../docker/artifacts.js';
import { isFinished } from '../../task/states.js';
import type { TaskRecord } from '../../task/types.js';
import { AgentError } from '../errors.js';
import { SmoothtaskError } from '../../errors/index.js';
import { ErrorBodySchema } from './errors.js';
import type { AgentRuntime } from './routes.js';
import { TaskParams } from './schemas.js';
import { taskOr404 } from './tasks.js';

const E = ErrorBodySchema;

interface Sum {
  path: string;
  size: number;
  mtimeMs: number;
  sha256: Promise<string>;
}

/** @internal SHA-256 of artifact files, keyed by task, valid while the file's size and mtime are unchanged; lazy process ZIPs (single-flight). */
export class ArtifactCache {
  readonly #sums = new Map<string, Sum>();
  readonly #zips = new Map<string, Promise<string | undefined>>();

  /** The SHA-256 (hex) of `path` as it is now (`size`, `mtimeMs`): from memory, the sidecar, or computed once. */
  sha256(taskId: string, path: string, size: number, mtimeMs: number): Promise<string> {
    const c = this.#sums.get(taskId);
    if (c && c.path === path && c.size === size && c.mtimeMs === mtimeMs) return c.sha256;
    const sidecar = `${path}.sha256`;
    const p = (async () => {
      const side = await readFile(sidecar, 'utf8').catch(() => '');
      const [hex, s, m] = side.trim().split(' ');
      if (hex && /^[0-9a-f]{64}$/.test(hex) && Number(s) === size && Number(m) === mtimeMs) return hex;
      const h = createHash('sha256');
      await pipeline(createReadStream(path), h);
      const out = h.digest('hex');
      await writeFile(sidecar, `${out} ${size} ${mtimeMs}\n`).catch(() => {});
      return out;
    })();
    this.#sums.set(taskId, { path, size, mtimeMs, sha256: p });
    p.catch(() => {
      if (this.#sums.get(taskId)?.sha256 === p) this.#sums.delete(taskId);
    });
    return p;
  }

  /** Builds a process task's ZIP once (concurrent requests share the build). */
  zipOnce(taskId: string, build: () => Promise<string | undefined>): Promise<string | undefined> {
    let p = this.#zips.get(taskId);
    if (!p) {
      p = build();
      this.#zips.set(taskId, p);
      p.catch(() => this.#zips.delete(taskId));
    }
    return p;
  }

  /** Drops a task's entries (task deleted). */
  forget(taskId: string): void {
    this.#sums.delete(taskId);
    this.#zips.delete(taskId);
  }
}

/** The ZIP of a finished task: the executor's archive (container/compose), or for process tasks the ZIP of `<workspace>/out/`, built on first request. */
async function zipOf(rt: AgentRuntime, t: Readonly<TaskRecord>): Promise<string | undefined> {
  const root = resolve(rt.workspaces);
  const inside = (p: string) => resolve(p).startsWith(root + sep);
  const recorded = t.artifacts.find((p) => p.endsWith('.zip') && inside(p));
  if (recorded) return recorded;
  if (t.kind !== 'process' || !t.workspace || !inside(t.workspace)) return undefined;
  const ws = t.workspace;
  return rt.artifacts.zipOnce(t.id, async () => {
    const dest = join(ws, 'outputs.zip');
    if (await stat(dest).then(() => true, () => false)) return dest;
    try {
      const info = await zipDirectory(join(ws, 'out'), dest, { root: ws });
      return info ? dest : undefined;
    } catch (e) {
      // A task's out/ that is a link out of its workspace, or too large: refused, said plainly.
      if (e instanceof SmoothtaskError) throw new AgentError('ERR_ARTIFACTS_REFUSED', `Task '${t.id}' outputs cannot be archived: ${e.message}`, { status: 422, cause: e });
      throw e;
    }
  });
}

/** @internal Registers the artifact route. */
export function artifactRoutes(app: FastifyInstance, rt: AgentRuntime): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/v1/tasks/:id/artifacts',
    {
      config: { scope: 'read' },
      schema: {
        summary: "The ZIP of a finished task's outputs, streamed",
        description:
          'Container and compose tasks: the executor archive of the outputs folder. Process tasks: the files under `<workspace>/out/` ' +
          '(the default cwd is the workspace), zipped on the first download. Headers: Content-Length, `x-checksum-sha256`, ETag ' +
          '(If-None-Match gives 304). 409 while the task runs; 404 when it produced none; 422 when its outputs cannot be archived (a link out of the workspace, too large).',
        tags: ['tasks'],
        security: [{ bearer: [] }],
        params: TaskParams,
        headers: z.object({ 'if-none-match': z.string().optional() }),
        response: { 200: { description: 'The ZIP', content: { 'application/zip': { schema: z.string().describe('binary ZIP') } } }, 304: z.null().describe('Not modified (If-None-Match matched the ETag)'), 400: E, 401: E, 403: E, 404: E, 409: E, 422: E },
      },
    },
    async (request, reply) => {
      const t = taskOr404(rt, request.params.id);
      if (!isFinished(t.state)) {
        throw new AgentError('ERR_TASK_NOT_FINISHED', `Task '${t.id}' is ${t.state}: artifacts exist once it has finished`, { status: 409 });
      }
      const path = await zipOf(rt, t);
      const st = path ? await stat(path).catch(() => undefined) : undefined;
      if (!path || !st) throw new AgentError('ERR_NO_ARTIFACTS', `Task '${t.id}' has no artifacts`, { status: 404 });
      const sha = await rt.artifacts.sha256(t.id, path, st.size, st.mtimeMs);
      const etag = `"sha256-${sha}"`;
      reply.header('etag', etag).header('x-checksum-sha256', sha).header('cache-control', 'private, no-cache');
      if (request.headers['if-none-match'] === etag) return reply.code(304).send(null);
      reply
        .type('application/zip')
        .header('content-length', String(st.size))
        .header('content-disposition', `attachment; filename="${t.id}.zip"`);
      return reply.send(createReadStream(path, { start: 0, end: Math.max(0, st.size - 1) }) as unknown as string);
    },
  );
}
