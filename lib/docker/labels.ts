import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { processStartTicks } from '../util/proc-start.js';
import { DockerOwnerIdError } from './errors.js';

/** Label keys put on every container, network, volume and image this module creates. */
export const LABELS = {
  /** Always `"true"`: marks a resource as created by smoothtask/docker. */
  managed: 'smoothtask.managed',
  /** The task id the resource belongs to. */
  taskId: 'smoothtask.task-id',
  /**
   * The owner id: the identity of the queue/engine that created it (`DockerEngine.ownerId`).
   * Cleanup, the reaper and compose teardown touch only resources of their own owner.
   */
  owner: 'smoothtask.owner',
  /** The process that created it (`<host>:<pid>:<start ticks>`, see {@link instanceId}); tells a crashed run from a live one. */
  instance: 'smoothtask.instance',
  /** `container`, `compose` or `build`: what kind of task created it. */
  kind: 'smoothtask.kind',
} as const;

/** What an owner id may contain: it is written into labels and hashed into compose project names. */
const OWNER_RE = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

/** Whether a string is a valid owner id (1–128 of `[A-Za-z0-9._:@-]`, starting alphanumeric). */
export function isValidOwnerId(owner: string): boolean {
  return OWNER_RE.test(owner);
}

/**
 * Labels for one task's resources: managed flag, task id, owner, creating process and kind.
 * @param instance the creating process (default: this one)
 */
export function taskLabels(taskId: string, owner: string, kind: 'container' | 'compose' | 'build', instance: string = instanceId()): Record<string, string> {
  return { [LABELS.managed]: 'true', [LABELS.taskId]: taskId, [LABELS.owner]: owner, [LABELS.instance]: instance, [LABELS.kind]: kind };
}

/**
 * Whether labels mark a resource as ours: managed, of this owner and (when given) of this task.
 * The one test every cleanup path applies before removing anything.
 */
export function ownedBy(labels: Record<string, string> | null | undefined, owner: string, taskId?: string): boolean {
  if (!labels || labels[LABELS.managed] !== 'true' || labels[LABELS.owner] !== owner) return false;
  return taskId === undefined || labels[LABELS.taskId] === taskId;
}

/**
 * The id of this process: `<hostname>:<pid>:<start ticks>`. The start time makes it unique
 * even when pids are reused, so the reaper can tell a live creator from a dead one.
 */
export function instanceId(): string {
  return `${hostname()}:${process.pid}:${processStartTicks(process.pid) ?? '0'}`;
}

/** A new random owner id (`st-` and 16 hex digits): the default of an engine that was given none. */
export function newOwnerId(): string {
  return `st-${randomBytes(8).toString('hex')}`;
}

/**
 * Whether the process named by an instance id is still alive on this host. Instances on
 * another host are treated as alive (we cannot tell), so the reaper never removes them unless told to.
 */
export function instanceAlive(instance: string): boolean {
  const [host, pidText, ticks] = instance.split(':');
  if (host !== hostname()) return true;
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  const now = processStartTicks(pid);
  return now !== undefined && now === ticks;
}

/** File name of the owner id kept by {@link persistentOwnerId}. */
export const OWNER_ID_FILE = 'docker-owner-id';

/**
 * The owner id kept in `<dir>/docker-owner-id` (created with a new random id the first time,
 * atomically: two processes racing on a fresh directory get the same id). Keep it beside the
 * task store, so that a restart of the same owner recognises, reaps and cleans its own
 * leftovers and nobody else's.
 *
 * @throws {@link DockerOwnerIdError} when the file cannot be read or created, or holds no valid id.
 * @example
 * ```ts
 * const engine = await connectDocker({ ownerId: await persistentOwnerId(storeDir) });
 * await reapLeftovers(engine); // what this owner's crashed earlier run left
 * ```
 */
export async function persistentOwnerId(dir: string): Promise<string> {
  const path = join(dir, OWNER_ID_FILE);
  try {
    await mkdir(dir, { recursive: true });
    try {
      const fh = await open(path, 'wx', 0o644);
      try {
        await fh.writeFile(`${newOwnerId()}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    // A racing creator may not have written yet: the file is short, retry briefly.
    for (let i = 0; ; i++) {
      const id = (await readFile(path, 'utf8')).trim();
      if (isValidOwnerId(id)) return id;
      if (id !== '' || i >= 50) throw new DockerOwnerIdError(path, `holds no valid owner id (${JSON.stringify(id.slice(0, 40))})`);
      await new Promise((r) => setTimeout(r, 20));
    }
  } catch (e) {
    if (e instanceof DockerOwnerIdError) throw e;
    throw new DockerOwnerIdError(path, (e as Error).message, { cause: e, ...((e as NodeJS.ErrnoException).errno !== undefined ? { errno: -(e as NodeJS.ErrnoException).errno! } : {}) });
  }
}
