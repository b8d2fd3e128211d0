// Task ids name the task's workspace folder (`<dataDir>/<id>`), its store document, container
// names and labels: an id that is not one safe path component (`..` puts the workspace outside
// the data directory) must be refused at submit with a ConfigError, before anything is created.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TaskQueue, type TaskExecutor } from 'smoothtask/task';
import { ConfigError } from '../../lib/errors/index.js';

const touch: TaskExecutor = {
  async run(ctx) {
    ctx.log('stdout', 'ran\n');
    return { exitCode: 0, outputs: [ctx.workspace] };
  },
};

describe('task ids', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanups) await c();
  });

  async function queue(): Promise<{ q: TaskQueue; base: string; dataDir: string }> {
    const base = await mkdtemp(join(tmpdir(), 'smoothtask-ids-'));
    const dataDir = join(base, 'data');
    const q = new TaskQueue({ dataDir });
    q.registerExecutor('touch', touch);
    cleanups.push(async () => {
      await q.close();
      await rm(base, { recursive: true, force: true });
    });
    await q.ready;
    return { q, base, dataDir };
  }

  it.each(['.', '..', '...', '', '/', 'a/b', '../x', 'a\0b', 'a\\b', '-rf', '.hidden', '_x', 'x'.repeat(201), 'tâche', 'a b'])(
    'refuses %j at submit with a ConfigError and creates nothing',
    async (id) => {
      const { q, base } = await queue();
      expect(() => q.submit({ id, kind: 'touch' })).toThrow(ConfigError);
      expect(q.get(id)).toBeUndefined();
      // Nothing appeared beside or inside the data directory.
      expect((await readdir(base)).filter((n) => n !== 'data')).toEqual([]);
    },
  );

  it.each(['a', 'A_B-1', 'task.1', '1...', 'x'.repeat(200), '0'])('accepts %j and puts its workspace inside the data directory', async (id) => {
    const { q, dataDir } = await queue();
    const rec = await q.submit({ id, kind: 'touch' }).done;
    expect(rec.state).toBe('succeeded');
    expect(rec.workspace).toBe(join(dataDir, id));
    expect(await readdir(dataDir)).toContain(id);
  });
});
