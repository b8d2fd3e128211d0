// A misspelled option is a ConfigError naming it, not a silently ignored key: JavaScript
// callers have no type checker to catch `concurency` or `netwrok`.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from 'smoothtask';
import { TaskQueue } from 'smoothtask/task';
import { JsonStore } from 'smoothtask/store';
import { WebhookDispatcher } from 'smoothtask/webhook';
import { ProcessExecutor, ResourceLeaseManager, Supervisor } from 'smoothtask/process';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'smoothtask-strict-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The error `f` throws or rejects with. */
async function failure(f: () => unknown): Promise<unknown> {
  try {
    await f();
  } catch (e) {
    return e;
  }
  return undefined;
}

function expectNamed(err: unknown, key: string): void {
  expect(err).toBeInstanceOf(ConfigError);
  expect((err as ConfigError).message).toContain(key);
}

describe('options with a misspelled key are refused, naming the key', () => {
  it('new TaskQueue({ concurency })', async () => {
    expectNamed(await failure(() => new TaskQueue({ concurency: 4 } as never)), 'concurency');
  });

  it('queue.submit({ timeoutMS }) and a process spec with { argz }', async () => {
    const q = new TaskQueue({ concurrency: 1 });
    q.registerExecutor('process', new ProcessExecutor());
    try {
      expectNamed(await failure(() => q.submit({ kind: 'process', spec: { command: 'true' }, timeoutMS: 5 } as never)), 'timeoutMS');
      expectNamed(await failure(() => q.submit({ kind: 'process', spec: { command: 'true', argz: ['x'] } })), 'argz');
    } finally {
      await q.close();
    }
  });

  it('WebhookDispatcher.open({ netwrok }) and JsonStore.open({ dirr })', async () => {
    const store = await JsonStore.open({ dir });
    try {
      expectNamed(await failure(() => WebhookDispatcher.open({ store, netwrok: { allow: ['127.0.0.1/32'] } } as never)), 'netwrok');
    } finally {
      store.close();
    }
    expectNamed(await failure(() => JsonStore.open({ dir, lockStaleMS: 1 } as never)), 'lockStaleMS');
  });

  it('ProcessExecutor, ResourceLeaseManager and Supervisor.add', async () => {
    expectNamed(await failure(() => new ProcessExecutor({ maxLogByte: 1 } as never)), 'maxLogByte');
    expectNamed(await failure(() => new ResourceLeaseManager({ resource: {} } as never)), 'resource');
    const sup = new Supervisor();
    try {
      expectNamed(await failure(() => sup.add({ name: 'x', command: 'true', restartt: 'never' } as never)), 'restartt');
    } finally {
      await sup.stopAll();
    }
  });
});
