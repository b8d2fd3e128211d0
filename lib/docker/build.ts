import { readdir } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import type { DockerEngine } from './engine.js';
import { dockerode, toDockerError } from './engine.js';
import { DockerBuildError } from './errors.js';
import { taskLabels } from './labels.js';

/** What {@link buildTaskImage} needs. */
export interface BuildRequest {
  /** Build context directory. */
  context: string;
  /** Dockerfile path relative to the context. */
  dockerfile: string;
  /** Build arguments. */
  args: Record<string, string>;
  /** Task id (labels and tag). */
  taskId: string;
  /** Called with each line of build output. */
  onOutput?: (line: string) => void;
  /** Abort the build. */
  signal?: AbortSignal;
}

/** An image built for a task. */
export interface BuiltImage {
  /** Image id (`sha256:…`). */
  imageId: string;
  /** Tag given to it: `smoothtask-build:<task>`. */
  tag: string;
}

async function listContext(root: string, dir = root, out: string[] = []): Promise<string[]> {
  for (const ent of await readdir(dir, { withFileTypes: true })) {
    const abs = join(dir, ent.name);
    if (ent.isDirectory()) await listContext(root, abs, out);
    else out.push(relative(root, abs).split(sep).join('/'));
  }
  return out;
}

/** Image ids the legacy builder printed as ` ---> <id>` (each finished step). @internal */
export function builtLayerIds(output: string): string[] {
  return [...output.matchAll(/^\s*---> ([0-9a-f]{12,64})\s*$/gm)].map((m) => m[1]!);
}

/** Lower-case tag-safe form of a task id. @internal */
export function tagSafe(id: string): string {
  return id.toLowerCase().replace(/[^a-z0-9_.-]/g, '-').replace(/^[^a-z0-9]+/, '').slice(0, 100) || 'task';
}

/**
 * Builds an image from a Dockerfile with the task's labels and tag `smoothtask-build:<task>`.
 *
 * On failure, intermediate untagged images the build produced are removed, so a broken
 * Dockerfile leaves nothing behind (the legacy builder keeps them as cache otherwise).
 *
 * @returns the image id.
 * @throws {@link DockerBuildError} with the build log when the Dockerfile is invalid or a step fails.
 */
export async function buildTaskImage(engine: DockerEngine, req: BuildRequest): Promise<BuiltImage> {
  const tag = `smoothtask-build:${tagSafe(req.taskId)}`;
  const src = await listContext(req.context);
  const labels = taskLabels(req.taskId, engine.ownerId, 'build');
  let log = '';
  const append = (s: string): void => {
    log = (log + s).slice(-65536);
    req.onOutput?.(s);
  };
  const produced: string[] = [];
  let imageId: string | undefined;
  let failure: string | undefined;
  let stream: Readable;
  try {
    stream = (await dockerode(engine).buildImage(
      { context: req.context, src },
      {
        t: tag,
        dockerfile: req.dockerfile,
        buildargs: req.args,
        labels,
        rm: true,
        forcerm: true,
        ...(req.signal ? { abortSignal: req.signal } : {}),
      } as Parameters<Docker['buildImage']>[1],
    )) as unknown as Readable;
  } catch (e) {
    const err = toDockerError(e, engine.socketPath, 'build');
    if (err.name === 'DockerUnavailableError') throw err;
    throw new DockerBuildError(`Dockerfile ${req.dockerfile} in ${req.context} failed to build: ${err.message}`, err.message, { cause: e });
  }
  let buf = '';
  const onLine = (line: string): void => {
    if (!line.trim()) return;
    let ev: { stream?: string; error?: string; errorDetail?: { message?: string }; aux?: { ID?: string } };
    try {
      ev = JSON.parse(line);
    } catch {
      append(line + '\n');
      return;
    }
    if (ev.stream) {
      append(ev.stream);
      produced.push(...builtLayerIds(ev.stream));
    }
    if (ev.aux?.ID) imageId = ev.aux.ID;
    if (ev.error || ev.errorDetail) {
      failure = ev.errorDetail?.message ?? ev.error ?? 'build failed';
      append(`ERROR: ${failure}\n`);
    }
  };
  try {
    for await (const chunk of stream) {
      buf += (chunk as Buffer).toString('utf8');
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        onLine(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    }
    onLine(buf);
  } catch (e) {
    failure ??= (e as Error).message;
  }
  if (failure === undefined && imageId === undefined) {
    const m = /Successfully built ([0-9a-f]+)/.exec(log);
    if (m?.[1]) imageId = m[1];
  }
  if (failure !== undefined || imageId === undefined) {
    await removeUntagged(engine, produced);
    throw new DockerBuildError(`Dockerfile ${req.dockerfile} in ${req.context} failed to build: ${failure ?? 'no image produced'}`, log);
  }
  return { imageId, tag };
}

/** Removes images from `ids` that carry no tag (build leftovers), newest first. @internal */
export async function removeUntagged(engine: DockerEngine, ids: string[]): Promise<void> {
  for (const id of [...new Set(ids)].reverse()) {
    try {
      const info = await dockerode(engine).getImage(id).inspect();
      const tags = (info.RepoTags ?? []).filter((t) => t !== '<none>:<none>');
      if (tags.length > 0) continue;
      await dockerode(engine).getImage(id).remove({ noprune: false });
    } catch {
      // Already gone, or a parent of something else: not ours to force.
    }
  }
}
