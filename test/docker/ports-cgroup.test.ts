// Host ports (two tasks asking for the same port: refused or reassigned; a host socket holding
// a port), and per-container cgroup id and usage of a running task, against the real engine.
import { once } from 'node:events';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TaskQueue, type TaskRecord } from '../../lib/task/index.js';
import { cgroupIdOfPid, containerUsage, type DockerExecutors, freeTcpPort, registerDockerExecutors, runContainer, taskPaths } from '../../lib/docker/index.js';
import { engineGate, IMAGE, probeEngine, tempDir, dockerOf } from './helpers.js';

const probe = await probeEngine();
const PREFIX = `ports-${process.pid}-`;

async function waitFor<T>(fn: () => T | undefined | Promise<T | undefined>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function httpGet(port: number): Promise<string> {
  // busybox httpd inside the container serves the workspace; retry while it starts.
  return waitFor(async () => {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/index.html`, { signal: AbortSignal.timeout(2000) });
      return r.ok ? await r.text() : undefined;
    } catch {
      return undefined;
    }
  }, 30_000);
}

const serve = (text: string) => ({
  image: IMAGE,
  command: ['sh', '-c', `echo ${text} > /work/index.html; exec httpd -f -p 8080 -h /work`],
});

describe.skipIf(engineGate(probe))('host port collisions', () => {
  const engine = probe.engine!;
  let queue: TaskQueue;
  let executors: DockerExecutors;
  let data: { dir: string; cleanup: () => Promise<void> };
  let hostServer: Server;

  beforeAll(async () => {
    data = await tempDir('ports');
    queue = new TaskQueue({ concurrency: 4, dataDir: data.dir, killAfterMs: 300 });
    executors = registerDockerExecutors(queue, { engine });
    await queue.ready;
  });
  // Asks the engine which host ports the task's running container publishes.
  const publishedPorts = (taskId: string): Promise<number[]> =>
    waitFor(async () => {
      const cs = await dockerOf(engine).listContainers({ filters: { label: [`smoothtask.task-id=${taskId}`], status: ['running'] } });
      const ports = cs[0]?.Ports.map((p) => p.PublicPort).filter((p) => p > 0);
      return ports?.length ? ports : undefined;
    });
  afterAll(async () => {
    await queue.close();
    hostServer?.close();
    await data.cleanup();
  });

  it('second task asking for the same host port is refused (naming the holder) or reassigned, as configured', async () => {
    const port = await freeTcpPort();
    const a = queue.submit({ id: `${PREFIX}a`, kind: 'container', spec: { ...serve('from-a'), ports: [{ container: 8080, host: port }] }, timeoutMs: 90_000 });
    await publishedPorts(a.id);
    expect(await httpGet(port)).toBe('from-a\n');

    const refused = await queue.submit({ id: `${PREFIX}b`, kind: 'container', spec: { ...serve('from-b'), ports: [{ container: 8080, host: port }] } }).done;
    expect(refused.state).toBe('failed');
    expect(refused.error?.code).toBe('ERR_PORT_COLLISION');
    expect(refused.error?.message).toContain(`Host port ${port} is already in use by task ${PREFIX}a`);

    const c = queue.submit({
      id: `${PREFIX}c`,
      kind: 'container',
      spec: { ...serve('from-c'), ports: [{ container: 8080, host: port }], onPortConflict: 'reassign' },
      timeoutMs: 90_000,
    });
    const cPorts = await publishedPorts(c.id);
    expect(cPorts[0]).not.toBe(port);
    expect(await httpGet(cPorts[0]!)).toBe('from-c\n');
    expect(await httpGet(port)).toBe('from-a\n');

    await Promise.all([queue.cancel(a.id), queue.cancel(c.id)]);
    const [ra, rc] = (await Promise.all([a.done, c.done])) as [TaskRecord, TaskRecord];
    expect(ra.state).toBe('cancelled');
    expect(rc.state).toBe('cancelled');
    expect((rc.result as { ports: { requested?: number }[] }).ports[0]?.requested).toBe(port);

    // Leases were returned: the port can be taken again.
    const again = await queue.submit({ id: `${PREFIX}d`, kind: 'container', spec: { image: IMAGE, command: ['true'], ports: [{ container: 8080, host: port }] } }).done;
    expect(again.state).toBe('succeeded');
  });

  it('exposes a running task\'s containers, a metrics filter on their cgroup ids, and usage', async () => {
    const id = `${PREFIX}live`;
    const h = queue.submit({ id, kind: 'container', spec: { image: IMAGE, command: ['sh', '-c', 'while true; do :; done'], limits: { cpus: 0.3 } }, timeoutMs: 60_000 });
    const running = await waitFor(() => (executors.running(id).length ? executors.running(id) : undefined));
    expect(running).toHaveLength(1);
    const c = running[0]!;
    expect(executors.metricsFilter(id)).toEqual({ cgroupIds: [c.cgroupId] });
    const inspect = await dockerOf(engine).getContainer(c.containerId).inspect();
    expect(inspect.State.Pid).toBe(c.pid);
    expect(inspect.Config.Labels['smoothtask.task-id']).toBe(id);
    // JSON has no BigInt: the running container serialises its cgroup id as a decimal string.
    expect(JSON.parse(JSON.stringify(executors.running(id)))).toEqual([{ containerId: c.containerId, pid: c.pid, cgroupId: c.cgroupId === undefined ? null : String(c.cgroupId), ports: [] }]);
    // CPU time grows while it spins (bounded wait, no timing assertion).
    const first = executors.usage(id)!.cpuNs;
    const later = await waitFor(() => {
      const u = executors.usage(id);
      return u && u.cpuNs > first ? u : undefined;
    }, 20_000);
    expect(later.containers).toBe(1);
    expect(later.memoryBytes).toBeGreaterThan(0);
    await queue.cancel(id);
    expect((await h.done).state).toBe('cancelled');
    expect(executors.running(id)).toEqual([]);
    expect(executors.usage(id)).toBeUndefined();
  });

  it('refuses a port held by a listening socket on the host, naming the process', async () => {
    hostServer = createServer();
    hostServer.listen(0, '127.0.0.1');
    await once(hostServer, 'listening');
    const port = (hostServer.address() as { port: number }).port;
    const r = await queue.submit({ id: `${PREFIX}e`, kind: 'container', spec: { image: IMAGE, command: ['true'], ports: [{ container: 80, host: port }] } }).done;
    expect(r.state).toBe('failed');
    expect(r.error?.code).toBe('ERR_PORT_COLLISION');
    expect(r.error?.message).toContain(`process ${process.pid}`);
  });
});

describe.skipIf(engineGate(probe))('cgroup id and usage of a running container', () => {
  const engine = probe.engine!;
  it('exposes the cgroup v2 id (inode of its cgroup dir) and reads CPU, memory and I/O from cgroup files', async () => {
    const t = await tempDir('cg');
    const ac = new AbortController();
    let seen: { id: bigint | undefined; pid: number; containerId: string; expected: bigint } | undefined;
    const usages: { cpuNs: number; memoryBytes?: number; ioWriteBytes: number }[] = [];
    let measuring: Promise<void> | undefined;
    let problem: Error | undefined;
    const run = runContainer(
      engine,
      {
        image: IMAGE,
        // Burn a little CPU, hold some memory in /dev/shm (tmpfs: charged to the cgroup), write to disk.
        command: ['sh', '-c', 'dd if=/dev/zero of=/dev/shm/fill bs=1M count=16 2>/dev/null; i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; dd if=/dev/zero of=/tmp/w bs=1M count=8 conv=fsync 2>/dev/null; echo burnt; sleep 600'],
        stopGraceMs: 200,
      },
      {
        taskId: `${PREFIX}cg`,
        ...taskPaths(t.dir, 'cg'),
        signal: ac.signal,
        onStarted: (info) => {
          // Independent computation: the "0::<path>" line of /proc/<pid>/cgroup under the cgroup2 mount.
          const path = readFileSync(`/proc/${info.pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'))!.slice(3);
          const mount = existsSync('/sys/fs/cgroup/unified/cgroup.procs') ? '/sys/fs/cgroup/unified' : '/sys/fs/cgroup';
          seen = { id: info.cgroupId, pid: info.pid, containerId: info.containerId, expected: statSync(join(mount, path), { bigint: true }).ino };
        },
        onLog: (c) => {
          if (measuring || !c.data.toString().includes('burnt')) return;
          // The line may come before onStarted was called (the engine's inspect answers late
          // under load): wait for it; whatever happens, the container is stopped after.
          measuring = (async () => {
            try {
              for (let i = 0; i < 400 && !seen; i++) await new Promise((r) => setTimeout(r, 50));
              if (!seen) throw new Error('onStarted was not called within 20 s of the "burnt" line');
              const u = await containerUsage(engine, seen.containerId);
              if (u) usages.push(u);
            } catch (e) {
              problem = e as Error;
            } finally {
              ac.abort(new Error('done measuring'));
            }
          })();
        },
      },
    );
    // A container that never printed its line is stopped in time to fail with a reason.
    const deadline = setTimeout(() => {
      problem ??= new Error('no "burnt" line within 45 s');
      ac.abort(problem);
    }, 45_000);
    const r = await run.finally(() => clearTimeout(deadline));
    await measuring;
    await t.cleanup();
    expect(problem?.message).toBeUndefined();
    expect(r.outcome).toBe('cancelled');
    expect(seen?.id).toBeTypeOf('bigint');
    expect(seen?.id).toBe(seen?.expected);
    expect(r.cgroupId).toBe(seen?.id);
    // A different cgroup (ours) has a different id.
    const own = cgroupIdOfPid(process.pid);
    expect(own).toBeTypeOf('bigint');
    expect(own).not.toBe(seen?.id);
    expect(usages).toHaveLength(1);
    const u = usages[0]!;
    expect(u.cpuNs).toBeGreaterThan(10_000_000);
    expect(u.memoryBytes ?? 0).toBeGreaterThan(16 * 1024 * 1024);
  });
});
