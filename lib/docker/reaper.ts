import { channel } from 'node:diagnostics_channel';
import { z } from 'zod';
import { validate } from '../errors/validate.js';
import type { DockerEngine } from './engine.js';
import { dockerode, toDockerError } from './engine.js';
import { instanceAlive, instanceId, isValidOwnerId, LABELS } from './labels.js';

/** diagnostics_channel on which the reaper publishes what it removed. */
export const reaperChannel = channel('smoothtask:docker:reaper');

/** Options of {@link reapLeftovers}. */
export const ReapOptionsSchema = z
  .object({
    /**
     * Which of the owner's resources to remove (resources of other owners are never touched):
     * - `dead` (default): those whose creating process is gone (same host, pid no longer alive
     *   with the same start time: label `smoothtask.instance`), e.g. a crashed earlier run of this
     *   owner. Resources of live processes, this one included, are kept.
     * - `others`: those not created by this process (use only when one process per host runs this owner).
     * - `all`: every resource of the owner, this process's own included.
     */
    scope: z.enum(['dead', 'others', 'all']).default('dead'),
    /**
     * Whose resources: default the engine's `ownerId`. Name another owner only to clean up after
     * one that will never come back (its id is the `smoothtask.owner` label).
     */
    owner: z.string().refine(isValidOwnerId, 'owner id: 1-128 of [A-Za-z0-9._:@-], starting alphanumeric').optional(),
    /** Also remove images built for tasks (label `smoothtask.managed`). */
    images: z.boolean().default(false),
    /** Restrict to these task ids. */
    taskIds: z.array(z.string()).optional(),
  })
  .strict();
/** Input type of {@link ReapOptionsSchema}. */
export type ReapOptions = z.input<typeof ReapOptionsSchema>;

/** What {@link reapLeftovers} removed. */
export interface ReapReport {
  /** Removed container ids. */
  containers: string[];
  /** Removed network names. */
  networks: string[];
  /** Removed volume names. */
  volumes: string[];
  /** Removed image ids. */
  images: string[];
  /** Task ids whose resources were found (removed or not). */
  taskIds: string[];
  /** Removals that failed, as `kind id: message`. */
  errors: string[];
}

/**
 * Removes what a crashed earlier run of this owner left behind: containers (forced, with
 * anonymous volumes), then networks and volumes, then optionally images, all found by the
 * labels `smoothtask.managed=true` and `smoothtask.owner=<owner>` and filtered by scope.
 * Resources of any other owner, and resources without our labels, are never touched.
 *
 * @example
 * ```ts
 * const engine = await connectDocker({ ownerId: await persistentOwnerId(storeDir) });
 * const report = await reapLeftovers(engine); // at startup
 * ```
 */
export async function reapLeftovers(engine: DockerEngine, options: ReapOptions = {}): Promise<ReapReport> {
  const o = validate(ReapOptionsSchema, options, 'reaper options');
  const d = dockerode(engine);
  const report: ReapReport = { containers: [], networks: [], volumes: [], images: [], taskIds: [], errors: [] };
  const tasks = new Set<string>();
  const owner = o.owner ?? engine.ownerId;
  const me = instanceId();
  const selected = (labels: Record<string, string> | undefined): boolean => {
    // Ours only: managed and of this owner (the list filters already ask the engine for that;
    // checked again here so that no other path can widen it).
    if (!labels || labels[LABELS.managed] !== 'true' || labels[LABELS.owner] !== owner) return false;
    const task = labels[LABELS.taskId] ?? '';
    if (o.taskIds && !o.taskIds.includes(task)) return false;
    // Resources labeled before the instance label existed carry the process id as owner.
    const instance = labels[LABELS.instance] ?? owner;
    let ok: boolean;
    if (o.scope === 'all') ok = true;
    else if (instance === me) ok = false;
    else ok = o.scope === 'others' || !instanceAlive(instance);
    if (ok && task) tasks.add(task);
    return ok;
  };
  const filters = { label: [`${LABELS.managed}=true`, `${LABELS.owner}=${owner}`] };
  const fail = (kind: string, id: string, e: unknown): void => {
    if ((e as { statusCode?: number }).statusCode === 404) return;
    report.errors.push(`${kind} ${id}: ${toDockerError(e, engine.socketPath, 'remove').message}`);
  };

  const list = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (e) {
      throw toDockerError(e, engine.socketPath, `list ${what}`);
    }
  };
  const containers = await list('containers', () => d.listContainers({ all: true, filters }));
  await Promise.all(
    containers
      .filter((c) => selected(c.Labels))
      .map(async (c) => {
        try {
          await d.getContainer(c.Id).remove({ force: true, v: true });
          report.containers.push(c.Id);
        } catch (e) {
          fail('container', c.Id, e);
        }
      }),
  );
  for (const n of await list('networks', () => d.listNetworks({ filters }))) {
    if (!selected(n.Labels)) continue;
    try {
      await d.getNetwork(n.Id).remove();
      report.networks.push(n.Name);
    } catch (e) {
      fail('network', n.Name, e);
    }
  }
  const vols = await list('volumes', () => d.listVolumes({ filters }));
  for (const v of vols.Volumes ?? []) {
    if (!selected(v.Labels ?? undefined)) continue;
    try {
      await d.getVolume(v.Name).remove();
      report.volumes.push(v.Name);
    } catch (e) {
      fail('volume', v.Name, e);
    }
  }
  if (o.images) {
    for (const img of await list('images', () => d.listImages({ filters }))) {
      if (!selected(img.Labels ?? undefined)) continue;
      try {
        await d.getImage(img.Id).remove({ force: true });
        report.images.push(img.Id);
      } catch (e) {
        fail('image', img.Id, e);
      }
    }
  }
  report.taskIds = [...tasks];
  reaperChannel.publish(report);
  return report;
}

/** Resources carrying the module's labels. */
export interface ManagedResources {
  /** Container ids. */
  containers: string[];
  /** Network names. */
  networks: string[];
  /** Volume names. */
  volumes: string[];
  /** Image ids. */
  images: string[];
}

/**
 * Resources carrying the module's labels (all owners), optionally only those of some tasks.
 * Useful to assert a clean engine.
 */
export async function managedResources(
  engine: DockerEngine,
  options: { taskIds?: string[] } = {},
): Promise<ManagedResources> {
  const d = dockerode(engine);
  const filters = { label: [`${LABELS.managed}=true`] };
  const keep = (l: Record<string, string> | null | undefined): boolean => !options.taskIds || options.taskIds.includes(l?.[LABELS.taskId] ?? '');
  let c, n, v, i;
  try {
    [c, n, v, i] = await Promise.all([d.listContainers({ all: true, filters }), d.listNetworks({ filters }), d.listVolumes({ filters }), d.listImages({ filters })]);
  } catch (e) {
    throw toDockerError(e, engine.socketPath, 'list managed resources');
  }
  return {
    containers: c.filter((x) => keep(x.Labels)).map((x) => x.Id),
    networks: n.filter((x) => keep(x.Labels)).map((x) => x.Name),
    volumes: (v.Volumes ?? []).filter((x) => keep(x.Labels)).map((x) => x.Name),
    images: i.filter((x) => keep(x.Labels)).map((x) => x.Id),
  };
}
