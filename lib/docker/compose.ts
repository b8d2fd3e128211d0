import { createHash } from 'node:crypto';
import { channel } from 'node:diagnostics_channel';
import { writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { validate } from '../errors/validate.js';
import { prepareOutputsDir, zipDirectory } from './artifacts.js';
import { builtLayerIds, removeUntagged, tagSafe } from './build.js';
import { composeFailed, detectCompose, labelOverride, parseComposeConfig, runCli } from './compose-cli.js';
import { cgroupIdOfPid } from './cgroup.js';
import { type DockerRunContext, isTimeoutReason, LOG_DRAIN_MS, type RunOutcome, runningContainer, stopContainer } from './container.js';
import type { ArchiveInfo } from './artifacts.js';
import { DockerDemuxer } from './demux.js';
import { type DockerEngine, dockerode, toDockerError } from './engine.js';
import { ComposeError, OutputTooLargeError } from './errors.js';
import { LABELS, ownedBy, taskLabels } from './labels.js';
import { TaskLogWriter } from './logs.js';
import { UnsafePathError } from '../workspace/index.js';
import { type ComposeTaskConfig, type ComposeTaskSpec, ComposeTaskSpecSchema } from './spec.js';
import { within } from '../util/within.js';

/** diagnostics_channel on which compose lifecycle events are published. */
export const composeChannel = channel('smoothtask:docker:compose');

/** Label compose itself puts on a project's resources. */
const PROJECT_LABEL = 'com.docker.compose.project';
const SERVICE_LABEL = 'com.docker.compose.service';

/** One service's ending in a compose task. */
export interface ServiceResult {
  /** Service name. */
  service: string;
  /** Container id (removed by `down`). */
  containerId: string;
  /** Exit code, or null when it was still running at `down`. */
  exitCode: number | null;
  /** cgroup id while it ran. */
  cgroupId?: bigint;
  /** Its log files. */
  logs: {
    /** stdout log file. */
    stdout: string;
    /** stderr log file. */
    stderr: string;
  };
}

/** The result of {@link runCompose}. */
export interface ComposeRunResult {
  /** Outcome. */
  outcome: RunOutcome;
  /** Exit code of `exitFrom`, or the first non-zero exit among services, or 0. */
  exitCode: number | null;
  /** Project name used with `-p`. */
  project: string;
  /** Per-service results. */
  services: ServiceResult[];
  /** Log directory (one file per service and stream, plus `compose.stdout.log` for the CLI). */
  logsDir: string;
  /** Outputs archive, when the project wrote to `${SMOOTHTASK_OUTPUTS}`. */
  archive?: ArchiveInfo;
  /** Set when the outputs exceeded the cap. */
  archiveError?: OutputTooLargeError | UnsafePathError;
  /** Output of `down` when it failed (resources were then removed through the Engine API). */
  downError?: string;
  /** Wall time, ms. */
  durationMs: number;
}

/**
 * Compose project name for a task of an owner: `smoothtask-<readable>-<hash>`, where
 * `<readable>` is up to 24 characters of the task id folded to `[a-z0-9-]` (for people reading
 * `docker ps`) and `<hash>` is the first 16 hex digits of SHA-256 over `owner NUL taskId`. The
 * hash makes the name injective in practice: task ids that fold to the same text (`a.b`, `a-b`,
 * `A_B`, `a_b`), long ids sharing a prefix, and the same id under two owners all get distinct
 * projects. Always a valid compose project name (lower case, starts with a letter, at most 52 characters).
 */
export function composeProjectName(taskId: string, ownerId: string): string {
  const readable = taskId.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 24).replace(/-+$/, '');
  const hash = createHash('sha256').update(ownerId).update('\0').update(taskId).digest('hex').slice(0, 16);
  return `smoothtask-${readable ? `${readable}-` : ''}${hash}`;
}

/**
 * Resources of a compose project (by compose's project label) that we did not create for this
 * task: no `smoothtask.managed`, another owner, or another task id. Such a project was started
 * outside the library (or by someone else) under our name; we neither take it over with `up`
 * nor take it down. Returns them as `kind name` strings. @internal
 */
export async function foreignProjectResources(engine: DockerEngine, project: string, taskId: string): Promise<string[]> {
  const filters = { label: [`${PROJECT_LABEL}=${project}`] };
  const d = dockerode(engine);
  const [cs, ns, vs] = await Promise.all([
    d.listContainers({ all: true, filters }),
    d.listNetworks({ filters }),
    d.listVolumes({ filters }).then((v) => v.Volumes ?? []),
  ]).catch((e: unknown) => {
    throw toDockerError(e, engine.socketPath, `list resources of compose project ${project}`);
  });
  const out: string[] = [];
  for (const c of cs) if (!ownedBy(c.Labels, engine.ownerId, taskId)) out.push(`container ${c.Names[0]?.replace(/^\//, '') ?? c.Id}`);
  for (const n of ns) if (!ownedBy(n.Labels, engine.ownerId, taskId)) out.push(`network ${n.Name}`);
  for (const v of vs) if (!ownedBy(v.Labels, engine.ownerId, taskId)) out.push(`volume ${v.Name}`);
  return out;
}

/**
 * Runs a compose project as a task: validate the files (`config`), label every service,
 * network, volume and built image through an override file, `up -d`, follow each service's
 * logs into per-service files, wait for `exitFrom` (or every service) to exit, and ALWAYS
 * `down -v --remove-orphans` (plus `--rmi local` when configured) — after success, failure,
 * timeout, cancel or a failed `up`. What `down` leaves (it can fail) is removed through the
 * Engine API by label.
 *
 * @throws {@link ComposeError} for an invalid compose file, a failed build or `up`, or
 *   services that are not ready within `waitTimeoutMs`; nothing of the project is left then.
 */
export async function runCompose(engine: DockerEngine, spec: ComposeTaskSpec, ctx: DockerRunContext): Promise<ComposeRunResult> {
  const cfg: ComposeTaskConfig = validate(ComposeTaskSpecSchema, spec, 'compose task spec');
  const grace = cfg.stopGraceMs ?? ctx.defaultStopGraceMs ?? 2_000;
  const t0 = performance.now();
  const cli = await detectCompose();
  const project = composeProjectName(ctx.taskId, engine.ownerId);
  const timeout = cfg.timeoutMs !== undefined ? AbortSignal.timeout(cfg.timeoutMs) : undefined;
  const signals = [ctx.signal, timeout].filter((s): s is AbortSignal => s !== undefined);
  const stopSignal = signals.length ? AbortSignal.any(signals) : undefined;
  const logs = await new TaskLogWriter(ctx.logsDir).init();
  const unsub = ctx.onLog ? logs.subscribe(ctx.onLog) : undefined;
  const outputsDir = join(ctx.workspaceDir, cfg.outputs.dir);
  const files = cfg.files.map((f) => resolve(f));
  const projectDir = resolve(cfg.projectDir ?? dirname(files[0]!));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...cfg.env,
    SMOOTHTASK_WORKSPACE: ctx.workspaceDir,
    SMOOTHTASK_OUTPUTS: outputsDir,
    SMOOTHTASK_TASK_ID: ctx.taskId,
    DOCKER_HOST: `unix://${engine.socketPath}`,
  };
  let cliOutput = '';
  const cliLog = (s: string): void => {
    // Kept (bounded) for the layer ids a failed build leaves: the legacy builder keeps them as cache.
    if (cliOutput.length < 1 << 20) cliOutput += s;
    void logs.write('compose', 'stdout', Buffer.from(s));
  };
  const base = [...cli.argv, '-p', project, '--project-directory', projectDir, ...files.flatMap((f) => ['-f', f])];
  const overridePath = join(ctx.logsDir, 'compose.smoothtask-labels.json');
  let upAttempted = false;
  const followers: Promise<unknown>[] = [];
  const services: ServiceResult[] = [];
  const started: string[] = [];
  let result: ComposeRunResult | undefined;
  let downError: string | undefined;
  try {
    await prepareOutputsDir(ctx.workspaceDir, cfg.outputs.dir);

    const conf = await runCli([...base, 'config'], { env, cwd: projectDir });
    if (conf.code !== 0) composeFailed(`Invalid compose file ${cfg.files.join(', ')}`, conf);
    const model = parseComposeConfig(conf.stdout);
    if (model.services.size === 0) throw new ComposeError(`Compose file ${cfg.files.join(', ')} defines no services`, conf.output);
    for (const s of [...cfg.services, ...(cfg.exitFrom ? [cfg.exitFrom] : [])]) {
      if (!model.services.has(s)) throw new ComposeError(`Service '${s}' is not in ${cfg.files.join(', ')} (has: ${[...model.services.keys()].join(', ')})`, conf.output);
    }
    await writeFile(overridePath, labelOverride(model, taskLabels(ctx.taskId, engine.ownerId, 'compose')));
    stopSignal?.throwIfAborted();

    // Never take over (`up` would recreate its containers) nor take down a project we did not create.
    const foreign = await foreignProjectResources(engine, project, ctx.taskId);
    if (foreign.length) {
      throw new ComposeError(
        `Compose project ${project} already exists with resources not created by owner ${engine.ownerId} for task ${ctx.taskId} (${foreign.slice(0, 5).join(', ')}); refusing to use or remove it`,
        '',
      );
    }
    upAttempted = true;
    const toBuild = [...model.services].filter(([name, s]) => s.build && (cfg.services.length === 0 || cfg.services.includes(name))).map(([n]) => n);
    if (cfg.build && toBuild.length) {
      // A separate build with --force-rm: `up --build` keeps the container of a failed step
      // (unlabeled, so nothing would ever remove it).
      const b = await runCli([...base, '-f', overridePath, 'build', '--force-rm', ...toBuild], {
        env,
        cwd: projectDir,
        onOutput: cliLog,
        ...(stopSignal ? { signal: stopSignal } : {}),
      });
      stopSignal?.throwIfAborted();
      if (b.code !== 0) composeFailed(`docker compose build failed for project ${project}`, b);
    }
    const up = await runCli([...base, '-f', overridePath, 'up', '-d', '--remove-orphans', '--no-build', ...cfg.services], {
      env,
      cwd: projectDir,
      onOutput: cliLog,
      ...(stopSignal ? { signal: stopSignal } : {}),
    });
    stopSignal?.throwIfAborted();
    if (up.code !== 0) composeFailed(`docker compose up failed for project ${project}`, up);

    const containers = await dockerode(engine).listContainers({ all: true, filters: { label: [`${PROJECT_LABEL}=${project}`] } });
    const byService = new Map<string, Docker.Container>();
    for (const info of containers) {
      const svc = info.Labels[SERVICE_LABEL] ?? info.Names[0] ?? info.Id;
      byService.set(svc, dockerode(engine).getContainer(info.Id));
    }
    if (byService.size === 0) throw new ComposeError(`docker compose up created no containers for project ${project}`, up.output);

    const waits = new Map<string, Promise<{ StatusCode: number }>>();
    for (const [svc, c] of byService) {
      const sr: ServiceResult = { service: svc, containerId: c.id, exitCode: null, logs: { stdout: logs.path(svc, 'stdout'), stderr: logs.path(svc, 'stderr') } };
      services.push(sr);
      const stream = (await c.logs({ follow: true, stdout: true, stderr: true })) as unknown as Readable;
      const demux = new DockerDemuxer((st, chunk) => logs.write(svc, st, chunk));
      followers.push(new Promise((r) => { demux.on('finish', r); demux.on('error', r); stream.on('error', r); }));
      stream.pipe(demux);
      const w = c.wait() as Promise<{ StatusCode: number }>;
      w.then((s) => (sr.exitCode = s.StatusCode), () => undefined);
      waits.set(svc, w);
    }
    await waitReady(engine, byService, services, cfg.waitTimeoutMs, stopSignal, (svc, pid, cgroupId, containerId) => {
      started.push(containerId);
      ctx.onStarted?.(runningContainer({ containerId, pid, cgroupId, ports: [], service: svc }));
    });
    composeChannel.publish({ phase: 'started', taskId: ctx.taskId, project, services: services.map((s) => s.service) });

    // Run until exitFrom (or all services) exit, or until the abort.
    const target = cfg.exitFrom ? [waits.get(cfg.exitFrom)!] : [...waits.values()];
    const done = Promise.all(target.map((w) => w.catch(() => ({ StatusCode: -1 }))));
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<'aborted'>((r) => {
      onAbort = () => r('aborted');
      if (stopSignal?.aborted) r('aborted');
      stopSignal?.addEventListener('abort', onAbort, { once: true });
    });
    const first = await Promise.race([done, aborted]);
    if (onAbort) stopSignal?.removeEventListener('abort', onAbort);
    if (first === 'aborted') {
      await Promise.all([...byService.entries()].map(([svc, c]) => stopContainer(c, grace, waits.get(svc)!)));
      await Promise.all([...waits.values()].map((w) => w.catch(() => undefined)));
    }
    const outcomeOnAbort: RunOutcome | undefined = timeout?.aborted ? 'timed_out' : ctx.signal?.aborted ? (isTimeoutReason(ctx.signal.reason) ? 'timed_out' : 'cancelled') : undefined;
    const codes = cfg.exitFrom ? [services.find((s) => s.service === cfg.exitFrom)?.exitCode ?? null] : services.map((s) => s.exitCode);
    const exitCode = codes.find((c) => c !== 0 && c !== null) ?? (codes.every((c) => c === 0) ? 0 : null);
    result = {
      outcome: outcomeOnAbort ?? (exitCode === 0 ? 'succeeded' : 'failed'),
      exitCode,
      project,
      services,
      logsDir: ctx.logsDir,
      durationMs: 0,
    };
  } catch (e) {
    if (stopSignal?.aborted && !(e instanceof ComposeError)) {
      result = {
        outcome: timeout?.aborted || isTimeoutReason(ctx.signal?.reason) ? 'timed_out' : 'cancelled',
        exitCode: null,
        project,
        services,
        logsDir: ctx.logsDir,
        durationMs: 0,
      };
    } else {
      throw e;
    }
  } finally {
    if (upAttempted) {
      downError = await composeDown(engine, base, overridePath, project, ctx.taskId, cfg, grace, env, projectDir, cliLog);
      // Tagged images are `down --rmi local`'s; untagged layers of a build that failed are ours.
      if (cfg.removeImages) await removeUntagged(engine, builtLayerIds(cliOutput));
    }
    for (const id of started) ctx.onStopped?.(id);
    await within(Promise.all(followers), LOG_DRAIN_MS);
    unsub?.();
    await logs.close();
  }
  if (downError !== undefined) result.downError = downError;
  try {
    const a = await zipDirectory(outputsDir, ctx.archivePath, { maxBytes: cfg.outputs.maxBytes, root: ctx.workspaceDir });
    if (a) result.archive = a;
  } catch (e) {
    if (e instanceof OutputTooLargeError || e instanceof UnsafePathError) result.archiveError = e;
    else throw e;
  }
  result.durationMs = performance.now() - t0;
  composeChannel.publish({ phase: 'ended', taskId: ctx.taskId, project, outcome: result.outcome, exitCode: result.exitCode });
  return result;
}

async function waitReady(
  engine: DockerEngine,
  byService: Map<string, Docker.Container>,
  services: ServiceResult[],
  timeoutMs: number,
  signal: AbortSignal | undefined,
  onRunning: (service: string, pid: number, cgroupId: bigint | undefined, containerId: string) => void,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const pending = new Set(byService.keys());
  while (pending.size) {
    for (const svc of [...pending]) {
      const info = await byService.get(svc)!.inspect().catch(() => undefined);
      if (!info) {
        pending.delete(svc);
        continue;
      }
      const health = info.State.Health?.Status;
      if (info.State.Running && info.State.Pid > 0) {
        const sr = services.find((s) => s.service === svc);
        if (sr && sr.cgroupId === undefined) {
          let id: bigint | undefined;
          try {
            id = cgroupIdOfPid(info.State.Pid);
          } catch {
            // Exited meanwhile.
          }
          if (id !== undefined) {
            sr.cgroupId = id;
            onRunning(svc, info.State.Pid, id, info.Id);
          }
        }
      }
      // Ready: running without a health check, healthy, or already exited (one-shot service).
      if ((info.State.Running && (health === undefined || health === 'healthy')) || !info.State.Running) pending.delete(svc);
      else if (health === 'unhealthy') throw new ComposeError(`Service '${svc}' is unhealthy`, JSON.stringify(info.State.Health?.Log ?? []).slice(-4096));
    }
    if (!pending.size) return;
    if (signal?.aborted) return;
    if (Date.now() > deadline) throw new ComposeError(`Services not ready within ${timeoutMs} ms: ${[...pending].join(', ')}`, '');
    await new Promise((r) => setTimeout(r, 100).unref());
  }
}

/**
 * `down -v --remove-orphans [--rmi local]`, then removal by label of anything of ours left (a
 * failing `down` must not leave resources). `down` acts on the whole project, so it runs only
 * when every resource of the project is ours (this owner, this task); otherwise only our own
 * labeled resources are removed through the Engine API and the others are left alone. Returns
 * the CLI output when `down` failed or was skipped.
 */
async function composeDown(
  engine: DockerEngine,
  base: string[],
  overridePath: string,
  project: string,
  taskId: string,
  cfg: ComposeTaskConfig,
  graceMs: number,
  env: NodeJS.ProcessEnv,
  cwd: string,
  cliLog: (s: string) => void,
): Promise<string | undefined> {
  const grace = String(Math.max(0, Math.ceil(graceMs / 1000)));
  const args = [...base, '-f', overridePath, 'down', '-v', '--remove-orphans', '-t', grace, ...(cfg.removeImages ? ['--rmi', 'local'] : [])];
  let failed: string | undefined;
  try {
    const foreign = await foreignProjectResources(engine, project, taskId);
    if (foreign.length) {
      failed = `down skipped: project ${project} holds resources we did not create (${foreign.slice(0, 5).join(', ')})`;
    } else {
      const r = await runCli(args, { env, cwd, onOutput: cliLog });
      if (r.code !== 0) failed = r.output;
    }
  } catch (e) {
    failed = (e as Error).message;
  }
  await removeProjectLeftovers(engine, project, taskId);
  return failed;
}

/**
 * Removes containers, networks and volumes of a compose project that carry our labels (this
 * engine's owner and this task); anything else in the project is left alone. @internal
 */
export async function removeProjectLeftovers(engine: DockerEngine, project: string, taskId: string): Promise<void> {
  const filter = { label: [`${PROJECT_LABEL}=${project}`, `${LABELS.managed}=true`, `${LABELS.owner}=${engine.ownerId}`, `${LABELS.taskId}=${taskId}`] };
  const d = dockerode(engine);
  const mine = (l: Record<string, string> | null | undefined): boolean => ownedBy(l, engine.ownerId, taskId);
  for (const c of await d.listContainers({ all: true, filters: filter }).catch(() => [])) if (mine(c.Labels)) await d.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined);
  for (const n of await d.listNetworks({ filters: filter }).catch(() => [])) if (mine(n.Labels)) await d.getNetwork(n.Id).remove().catch(() => undefined);
  const vols = await d.listVolumes({ filters: filter }).catch(() => ({ Volumes: [] }));
  for (const v of vols.Volumes ?? []) if (mine(v.Labels)) await d.getVolume(v.Name).remove().catch(() => undefined);
}
