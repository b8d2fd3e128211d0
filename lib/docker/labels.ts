import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

/** Label keys put on every container, network, volume and image this module creates. */
export const LABELS = {
  /** Always `"true"`: marks a resource as created by smoothtask/docker. */
  managed: 'smoothtask.managed',
  /** The task id the resource belongs to. */
  taskId: 'smoothtask.task-id',
  /** The owner instance id (host, pid and process start time of the creating process). */
  owner: 'smoothtask.owner',
  /** `container`, `compose` or `build`: what kind of task created it. */
  kind: 'smoothtask.kind',
} as const;

/** Labels for one task's resources. */
export function taskLabels(taskId: string, owner: string, kind: 'container' | 'compose' | 'build'): Record<string, string> {
  return { [LABELS.managed]: 'true', [LABELS.taskId]: taskId, [LABELS.owner]: owner, [LABELS.kind]: kind };
}

/** Start time of a process in clock ticks since boot (field 22 of /proc/<pid>/stat), or undefined. */
export function processStartTicks(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may hold spaces and parentheses: fields start after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19];
  } catch {
    return undefined;
  }
}

/**
 * The owner id of this process: `<hostname>:<pid>:<start ticks>`. The start time makes it
 * unique even when pids are reused, so the reaper can tell a live owner from a dead one.
 */
export function defaultOwnerId(): string {
  return `${hostname()}:${process.pid}:${processStartTicks(process.pid) ?? '0'}`;
}

/**
 * Whether the process named by an owner id is still alive on this host. Owners on another
 * host are treated as alive (we cannot tell), so the reaper never removes them unless told to.
 */
export function ownerAlive(owner: string): boolean {
  const [host, pidText, ticks] = owner.split(':');
  if (host !== hostname()) return true;
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  const now = processStartTicks(pid);
  return now !== undefined && now === ticks;
}
