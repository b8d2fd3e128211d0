// Log path against a real container: 16 MiB of output through the demuxer into a deliberately
// slow sink stays bounded in our process (backpressure reaches the engine socket), and the
// runner's per-task log files keep stdout and stderr apart and stay readable after removal.
import type { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { DockerDemuxer } from '../../lib/docker/demux.js';
import { readTaskLog, runContainer, taskPaths } from '../../lib/docker/index.js';
import { engineGate, IMAGE, probeEngine, tempDir, dockerOf } from './helpers.js';

const probe = await probeEngine();
const PREFIX = `logs-${process.pid}-`;
const TOTAL = 16 * 1024 * 1024;

describe.skipIf(engineGate(probe))('container logs', () => {
  const engine = probe.engine!;

  it('a slow consumer bounds what is buffered in this process (backpressure on the attach stream)', async () => {
    const c = await dockerOf(engine).createContainer({
      Image: IMAGE,
      Cmd: ['sh', '-c', `head -c ${TOTAL} /dev/zero; echo done >&2`],
      AttachStdout: true,
      AttachStderr: true,
      Labels: { 'smoothtask.managed': 'true', 'smoothtask.task-id': `${PREFIX}bp` },
      HostConfig: { LogConfig: { Type: 'none', Config: {} } },
    });
    try {
      const attached = (await c.attach({ stream: true, stdout: true, stderr: true })) as unknown as Readable;
      let out = 0;
      let err = '';
      let maxBuffered = 0;
      let inFlight = 0;
      let maxInFlight = 0;
      const demux = new DockerDemuxer(async (stream, chunk) => {
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        if (stream === 'stderr') err += chunk.toString();
        else out += chunk.length;
        maxBuffered = Math.max(maxBuffered, attached.readableLength + demux.writableLength);
        // A slow disk: every chunk waits a timer tick.
        await new Promise((r) => setTimeout(r, 1));
        inFlight--;
      });
      const finished = new Promise((res, rej) => {
        demux.on('finish', res);
        demux.on('error', rej);
      });
      attached.pipe(demux);
      await c.start();
      await finished;
      expect(out).toBe(TOTAL);
      expect(err).toBe('done\n');
      // The sink is never asked for a chunk before it finished the previous one, and what waits
      // in stream buffers stays at high-water-mark size (64 KiB plus a socket read), not megabytes.
      expect(maxInFlight).toBe(1);
      expect(maxBuffered).toBeLessThan(1024 * 1024);
    } finally {
      await c.remove({ force: true });
    }
  });

  it('keeps stdout and stderr in separate files, readable after the container is gone', async () => {
    const t = await tempDir('logs');
    const live: { stream: string; text: string }[] = [];
    const r = await runContainer(
      engine,
      { image: IMAGE, command: ['sh', '-c', 'for i in 1 2 3; do echo out-$i; echo err-$i >&2; done'] },
      { taskId: `${PREFIX}files`, ...taskPaths(t.dir, 'files'), onLog: (c) => live.push({ stream: c.stream, text: c.data.toString() }) },
    );
    const gone = await dockerOf(engine).getContainer(r.containerId).inspect().catch((e: { statusCode?: number }) => e.statusCode);
    expect(gone).toBe(404);
    expect(await readTaskLog(r.logs.dir, 'main', 'stdout')).toBe('out-1\nout-2\nout-3\n');
    expect(await readTaskLog(r.logs.dir, 'main', 'stderr')).toBe('err-1\nerr-2\nerr-3\n');
    // Live listeners got the same bytes, stream by stream.
    expect(live.filter((l) => l.stream === 'stdout').map((l) => l.text).join('')).toBe('out-1\nout-2\nout-3\n');
    expect(live.filter((l) => l.stream === 'stderr').map((l) => l.text).join('')).toBe('err-1\nerr-2\nerr-3\n');
    await t.cleanup();
  });
});
