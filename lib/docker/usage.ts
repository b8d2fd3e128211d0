import { type CgroupUsage, cgroupUsageOfPid } from './cgroup.js';
import type { DockerEngine } from './engine.js';
import { dockerode, toDockerError } from './engine.js';

/** Usage of a running container. */
export interface ContainerUsage extends CgroupUsage {
  /** Host pid of its init process. */
  pid: number;
}

/**
 * CPU, memory and I/O of a running container (by id or name), read from its cgroup files.
 * Resolves `undefined` when the container is not running.
 */
export async function containerUsage(engine: DockerEngine, containerId: string): Promise<ContainerUsage | undefined> {
  let info;
  try {
    info = await dockerode(engine).getContainer(containerId).inspect();
  } catch (e) {
    if ((e as { statusCode?: number }).statusCode === 404) return undefined;
    throw toDockerError(e, engine.socketPath, `inspect ${containerId}`);
  }
  const pid = info.State.Pid;
  if (!info.State.Running || pid <= 0) return undefined;
  try {
    return { ...cgroupUsageOfPid(pid), pid };
  } catch {
    return undefined;
  }
}
