/**
 * Workspace file routes: list a folder, download a file (Range, ETag, SHA-256) or a folder as a
 * streamed ZIP, upload into `inputs/` (streamed, quota-checked, optional expected SHA-256,
 * atomic), delete. Everything goes through {@link WorkspaceFiles} (the workspace path policy).
 * @module
 */
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import rangeParser from 'range-parser';
import { z } from 'zod';
import { isFinished } from '../../task/states.js';
import type { TaskRecord } from '../../task/types.js';
import { AgentError } from '../errors.js';
import { INPUTS_DIR } from '../files.js';
import { ErrorBodySchema } from './errors.js';
import type { AgentRuntime } from './routes.js';
import { TaskParams } from './schemas.js';
import { taskOr404 } from './tasks.js';

const E = ErrorBodySchema;
const security = [{ bearer: [] }];

const FileParams = TaskParams.extend({
  '*': z.string().max(4096).describe('Path inside the workspace, e.g. `inputs/data.csv` or `out/` (URL-encoded components)'),
}).strict();

const FileEntrySchema = z
  .object({
    name: z.string().describe('Name (`%XX`-escaped where it is not plain UTF-8)'),
    type: z.enum(['file', 'directory', 'symlink', 'special']).describe('`symlink` is never followed, `special` (FIFO, socket, device) never opened'),
    size: z.number().int().min(0),
    mtimeMs: z.number(),
  })
  .meta({ id: 'FileEntry' });

const Listing = z
  .object({ path: z.string(), entries: z.array(FileEntrySchema) })
  .meta({ id: 'FolderListing', description: 'The entries of a workspace folder' });

const Written = z
  .object({ path: z.string(), size: z.number().int().min(0), sha256: z.string(), replaced: z.boolean() })
  .meta({ id: 'UploadedFile' });

const GetQuery = z
  .object({
    format: z.enum(['json', 'zip']).optional().describe('For a folder: `json` (default) lists it, `zip` streams its files as a ZIP'),
  })
  .strict();

/** The path of the `*` param, with a trailing slash dropped (`out/` is the folder `out`). */
const relOf = (p: string): string => p.replace(/\/+$/, '');

/** Strong validator of a file version: device, inode, size and mtime (no read needed). */
const etagOf = (st: { dev: number; ino: number; size: number; mtimeMs: number }): string =>
  `"${st.dev.toString(36)}-${st.ino.toString(36)}-${st.size.toString(36)}-${Math.round(st.mtimeMs * 1000).toString(36)}"`;

function writable(t: Readonly<TaskRecord>): void {
  if (t.state !== 'created' || !t.held) {
    throw new AgentError('ERR_WORKSPACE_READ_ONLY', `Task '${t.id}' is ${t.state}: uploads are accepted while it waits for its inputs (submitted with hold, not started)`, {
      status: 409,
    });
  }
}

function removable(t: Readonly<TaskRecord>): void {
  if (!(t.state === 'created' && t.held) && !isFinished(t.state)) {
    throw new AgentError('ERR_WORKSPACE_BUSY', `Task '${t.id}' is ${t.state}: files can be removed while it waits for its inputs or once it has finished`, { status: 409 });
  }
}

/**
 * Cuts the upload when the client sends nothing for `idleMs` while its body arrives. The socket's
 * idle timer is restored as soon as the body has all been read: hashing and fsync after it are the
 * agent's time, not the client's (and Node destroys a socket whose timer fires once the request is
 * complete, without asking the request).
 */
function idleGuard(raw: IncomingMessage, body: Readable, idleMs: number): () => void {
  const socket = raw.socket;
  const prev = socket.timeout ?? 0;
  const onTimeout = () => body.destroy(new AgentError('ERR_UPLOAD_IDLE', `The upload sent nothing for ${idleMs} ms; nothing was kept`, { status: 408 }));
  const restore = () => {
    raw.off('timeout', onTimeout);
    if (!socket.destroyed) socket.setTimeout(prev);
  };
  raw.setTimeout(idleMs, onTimeout);
  raw.once('end', restore);
  return () => {
    raw.off('end', restore);
    restore();
  };
}

async function sendFile(rt: AgentRuntime, request: FastifyRequest, reply: FastifyReply, id: string, rel: string): Promise<FastifyReply> {
  const f = await rt.files.openRead(id, rel);
  let handedOver = false;
  try {
    const st = f.stats;
    const etag = etagOf(st);
    reply
      .header('etag', etag)
      .header('last-modified', new Date(st.mtimeMs).toUTCString())
      .header('accept-ranges', 'bytes')
      .header('cache-control', 'private, no-cache');
    const sha = rt.files.knownSha256(st);
    if (sha) reply.header('x-checksum-sha256', sha);
    const inm = request.headers['if-none-match'];
    if (inm !== undefined && inm.split(',').some((v) => v.trim() === etag || v.trim() === '*')) return reply.code(304).send();
    let start = 0;
    let end = st.size - 1;
    const range = request.headers.range;
    const ifRange = request.headers['if-range'];
    if (range !== undefined && (ifRange === undefined || ifRange === etag)) {
      const r = rangeParser(st.size, range, { combine: true });
      if (r === -1) {
        return reply.code(416).header('content-range', `bytes */${st.size}`).send({ error: { code: 'ERR_RANGE_NOT_SATISFIABLE', message: `Range '${range}' is outside the file's ${st.size} bytes` } });
      }
      // -2 (malformed) and several ranges: the whole file (allowed by RFC 9110).
      if (r !== -2 && r.type === 'bytes' && r.length === 1) {
        start = r[0]!.start;
        end = r[0]!.end;
        reply.code(206).header('content-range', `bytes ${start}-${end}/${st.size}`);
      }
    }
    const name = rel.split('/').pop() ?? 'file';
    reply
      .type('application/octet-stream')
      .header('content-length', String(Math.max(0, end - start + 1)))
      .header('content-disposition', `attachment; filename*=UTF-8''${encodeURIComponent(name)}`);
    // An empty stream keeps the Content-Length set above (HEAD, or an empty file).
    if (request.method === 'HEAD' || end < start) return reply.send(Readable.from([]));
    // At most the bytes counted now are sent: a file that grows meanwhile does not break the framing.
    const stream = f.handle.createReadStream({ start, end, autoClose: true, highWaterMark: 1024 * 1024 });
    stream.once('close', () => void f.close());
    handedOver = true;
    return reply.send(stream);
  } finally {
    if (!handedOver) await f.close();
  }
}

/** @internal Registers the workspace file routes. */
export function fileRoutes(app: FastifyInstance, rt: AgentRuntime): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const fcfg = rt.config.files;

  const getSchema = (withPath: boolean) => ({
    summary: withPath ? 'A file of the workspace (download) or a folder (listing or ZIP)' : "The task's workspace folder (listing or ZIP)",
    description:
      'A regular file is streamed with Content-Length, ETag (If-None-Match: 304), Last-Modified, `x-checksum-sha256` when the agent knows it (files uploaded through it) and Range (one range: 206; unsatisfiable: 416). ' +
      'A folder is listed (JSON) or, with `format=zip`, streamed as a ZIP of its regular files. Links are never followed and special files never opened: ' +
      'a link or FIFO named directly is refused (403 `ERR_UNSAFE_PATH`), inside a listing it shows as `symlink`/`special`, inside a ZIP it is left out. ' +
      '`..`, absolute paths, NUL, backslashes and drive letters are refused (400).',
    tags: ['files'],
    security,
    params: withPath ? FileParams : TaskParams,
    querystring: GetQuery,
    response: {
      200: {
        description: 'The file (application/octet-stream), the listing (JSON) or the ZIP (application/zip)',
        content: {
          'application/json': { schema: Listing },
          'application/octet-stream': { schema: z.string().describe('file bytes') },
          'application/zip': { schema: z.string().describe('binary ZIP') },
        },
      },
      206: { description: 'The requested byte range', content: { 'application/octet-stream': { schema: z.string().describe('file bytes') } } },
      304: z.null().describe('Not modified (If-None-Match matched the ETag)'),
      400: E,
      403: E,
      404: E,
      413: E,
      416: E,
    },
  });

  const get = async (request: FastifyRequest, reply: FastifyReply, id: string, rel: string, format: 'json' | 'zip' | undefined) => {
    taskOr404(rt, id);
    const st = await rt.files.stat(id, rel);
    if (!st) throw new AgentError('ERR_FILE_NOT_FOUND', rel === '' ? `Task '${id}' has no workspace yet` : `No file or folder '${rel}' in the workspace`, { status: 404 });
    if (st.kind === 'symlink' || st.kind === 'special') {
      throw new AgentError('ERR_UNSAFE_PATH', `'${rel}' is a ${st.kind === 'symlink' ? 'symbolic link (not followed)' : 'special file (not opened)'}`, { status: 403 });
    }
    if (st.kind === 'file') return sendFile(rt, request, reply, id, rel);
    if (format === 'zip') {
      const z = await rt.files.zip(id, rel, fcfg.maxZipBytes).catch((e: unknown) => {
        if ((e as { code?: string }).code === 'ERR_ARCHIVE_TOO_LARGE') {
          throw new AgentError('ERR_ARCHIVE_TOO_LARGE', `${(e as Error).message} (files.maxZipBytes)`, { status: 413, cause: e });
        }
        throw e;
      });
      if (!z) throw new AgentError('ERR_FILE_NOT_FOUND', `The folder '${rel || '.'}' holds no regular file to archive`, { status: 404 });
      const name = (rel.split('/').pop() || id).replace(/[^\w.-]/g, '_');
      z.stream.once('close', () => void z.close());
      if (z.skipped.length) reply.header('x-skipped-entries', String(z.skipped.length));
      return reply
        .type('application/zip')
        .header('content-disposition', `attachment; filename="${name}.zip"`)
        .header('x-archive-files', String(z.files))
        .send(z.stream);
    }
    return reply.type('application/json').send({ path: rel, entries: await rt.files.list(id, rel) });
  };

  r.get('/v1/tasks/:id/files', { config: { scope: 'read' }, schema: getSchema(false) }, (request, reply) => get(request, reply, request.params.id, '', request.query.format));
  r.get('/v1/tasks/:id/files/*', { config: { scope: 'read' }, schema: getSchema(true) }, (request, reply) =>
    get(request, reply, request.params.id, relOf((request.params as unknown as { '*': string })['*']), request.query.format),
  );

  // Uploads: the body is the file's bytes, streamed to disk (never buffered whole).
  app.register(async (scope) => {
    // Any content type: the bytes are the file (text/plain and JSON are not parsed here).
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
    const s = scope.withTypeProvider<ZodTypeProvider>();
    s.put(
      '/v1/tasks/:id/files/*',
      {
        config: { scope: 'submit', upload: true },
        schema: {
          summary: `Upload a file into the workspace's ${INPUTS_DIR}/ folder`,
          description:
            `The request body is the file (any content type), streamed to a temporary name, counted against the quotas as it arrives, hashed, then fsynced and renamed into place: ` +
            'a cut, refused or mismatching upload leaves nothing behind. Missing folders are created. Send `x-checksum-sha256` to have the bytes checked before the rename (422 on mismatch). ' +
            `Only under \`${INPUTS_DIR}/\` (403 elsewhere) and only while the task waits for its inputs (submitted with \`hold\`; 409 otherwise). ` +
            '413 `ERR_QUOTA_EXCEEDED` over `files.maxFileBytes`, `files.workspaceBytes` (the inputs of one task) or `files.agentBytes` (the inputs of all tasks). ' +
            'An upload that sends nothing for `files.uploadIdleTimeoutMs` is cut.',
          tags: ['files'],
          security,
          params: FileParams,
          headers: z.object({
            'x-checksum-sha256': z.string().regex(/^[0-9a-fA-F]{64}$/).optional().describe('Expected SHA-256 of the body (hex)'),
          }),
          response: { 201: Written, 400: E, 403: E, 404: E, 408: E, 409: E, 413: E, 422: E, 507: E },
        },
      },
      async (request, reply) => {
        const id = request.params.id;
        writable(taskOr404(rt, id));
        const rel = relOf(request.params['*']);
        const body = request.body as unknown as Readable;
        const len = request.headers['content-length'];
        const stopIdle = idleGuard(request.raw, body, fcfg.uploadIdleTimeoutMs);
        try {
          const w = await rt.files.write(id, rel, body, {
            ...(request.headers['x-checksum-sha256'] ? { sha256: request.headers['x-checksum-sha256'] } : {}),
            ...(len !== undefined && /^\d+$/.test(len) ? { size: Number(len) } : {}),
          });
          return reply.code(201).send(w);
        } catch (e) {
          // Refused before the whole body was read: the connection cannot be reused.
          if (!request.raw.complete) reply.header('connection', 'close');
          throw e;
        } finally {
          stopIdle();
        }
      },
    );
  });

  r.delete(
    '/v1/tasks/:id/files/*',
    {
      config: { scope: 'submit' },
      schema: {
        summary: 'Remove a file or folder of the workspace',
        description:
          'A folder goes with everything in it; a link is removed itself, never its target (no link is followed at any level). ' +
          'Allowed while the task waits for its inputs or once it has finished (409 while it is queued or running).',
        tags: ['files'],
        security,
        params: FileParams,
        response: { 204: z.null().describe('Removed'), 400: E, 403: E, 404: E, 409: E },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      removable(taskOr404(rt, id));
      const rel = relOf(request.params['*']);
      if (!(await rt.files.remove(id, rel))) throw new AgentError('ERR_FILE_NOT_FOUND', `No file or folder '${rel}' in the workspace`, { status: 404 });
      return reply.code(204).send(null);
    },
  );
}
