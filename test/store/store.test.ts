import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { readdirSync, readFileSync } from 'node:fs';
import { open, mkdtemp, readFile, readdir, rm, writeFile, stat, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { JsonStore, STORE_CHANNELS, TASK_PERSISTENCE_CHANNELS, StoreCorruptError, StoreLockError, StoreTaskPersistence, writeFileDurable } from 'smoothtask/store';
import { TaskQueue, TaskRecordSchema, type TaskRecord } from 'smoothtask/task';
import { ConfigError } from '../../lib/errors/index.js';
import { bundleChild, exited, startChild } from './helpers.js';

/** The last record of each task in the journals under `dir`, read synchronously (journal line: `<crc> <len> <json>`). */
function journaled(dir: string): Map<string, TaskRecord> {
  const out = new Map<string, TaskRecord>();
  for (const n of readdirSync(dir).filter((x) => x.startsWith('.journal-')).sort()) {
    // a journal is preallocated: its lines end where the zeros start
    const text = readFileSync(join(dir, n), 'utf8');
    const used = text.indexOf('\0') < 0 ? text : text.slice(0, text.indexOf('\0'));
    for (const line of used.split('\n')) {
      if (!line) continue;
      const op = JSON.parse(line.slice(line.indexOf(' ', 9) + 1));
      if (op.op === 'put') out.set(op.rec.id, TaskRecordSchema.parse(op.rec));
    }
  }
  return out;
}

const Doc = z.object({ n: z.number().int(), writer: z.number(), pad: z.string() });
let root: string;
let bundle: string;
let light: string;
const children = new Set<import('node:child_process').ChildProcess>();

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'st-store-'));
  bundle = await bundleChild();
  light = await bundleChild('light-writer');
});
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await rm(root, { recursive: true, force: true });
});

describe('JsonStore basics', () => {
  it('writes, reads, updates, lists, deletes; validates both ways', async () => {
    const s = await JsonStore.open({ dir: join(root, 'basic') });
    const S = z.object({ a: z.number() });
    expect(await s.read('x/one', S)).toBeUndefined();
    await s.write('x/one', S, { a: 1 });
    expect(await s.read('x/one', S)).toEqual({ a: 1 });
    expect(await s.update('x/one', S, (c) => ({ a: c!.a + 1 }))).toEqual({ a: 2 });
    await s.write('x/two', S, { a: 9 });
    expect(await s.list('x')).toEqual(['x/one', 'x/two']);
    await expect(s.write('x/one', S, { a: 'no' } as never)).rejects.toBeInstanceOf(ConfigError);
    expect(() => s.path('../escape')).toThrow(ConfigError);
    expect(await s.delete('x/two')).toBe(true);
    expect(await s.delete('x/two')).toBe(false);
    expect(await s.list('x')).toEqual(['x/one']);
    // No temp files or lock files beside the documents; the store's lease is released (its
    // ownership token stays at the root).
    expect((await readdir(join(s.dir, 'x'))).sort()).toEqual(['one.json']);
    await sleep(20);
    expect((await readdir(s.dir)).sort()).toEqual(['.store.lock-owner', 'x']);
    s.close();
    await expect(s.read('x/one', S)).rejects.toThrow(/closed/);
  });

  it('corrupt documents are moved aside with a typed error, never overwritten', async () => {
    const s = await JsonStore.open({ dir: join(root, 'corrupt') });
    const S = z.object({ a: z.number() });
    await writeFile(join(s.dir, 'bad.json'), '{"a": 1, trunc');
    const err = await s.read('bad', S).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreCorruptError);
    const ce = err as StoreCorruptError;
    expect(ce.kind).toBe('json');
    expect(ce.movedTo).toMatch(/bad\.json\.corrupt-\d+$/);
    expect(await readFile(ce.movedTo!, 'utf8')).toBe('{"a": 1, trunc');
    expect(await s.read('bad', S)).toBeUndefined();

    await writeFile(join(s.dir, 'wrong.json'), '{"a": "string"}');
    const e2 = (await s.update('wrong', S, () => ({ a: 5 })).catch((e: unknown) => e)) as StoreCorruptError;
    expect(e2).toBeInstanceOf(StoreCorruptError);
    expect(e2.kind).toBe('schema');
    expect(await readFile(e2.movedTo!, 'utf8')).toBe('{"a": "string"}');
    // the update did not write over it: the key is absent until someone writes again
    expect(await s.read('wrong', S)).toBeUndefined();
  });

  it('sweeps temp files of dead writers at open', async () => {
    const dir = join(root, 'sweep');
    await mkdir(dir, { recursive: true });
    const dead = join(dir, '.a.json.tmp-999999-0123abcd');
    const mine = join(dir, `.a.json.tmp-${process.pid}-0123abcd`);
    await writeFile(dead, 'x');
    await writeFile(mine, 'x');
    const old = new Date(Date.now() - 60_000);
    await import('node:fs/promises').then((f) => Promise.all([f.utimes(dead, old, old), f.utimes(mine, old, old)]));
    await JsonStore.open({ dir });
    const left = await readdir(dir);
    expect(left).not.toContain('.a.json.tmp-999999-0123abcd');
    expect(left).toContain(`.a.json.tmp-${process.pid}-0123abcd`);
  });

  it('writeFileDurable replaces content and leaves no temp file', async () => {
    const p = join(root, 'durable.txt');
    await writeFileDurable(p, 'one');
    await writeFileDurable(p, 'two');
    expect(await readFile(p, 'utf8')).toBe('two');
    expect((await readdir(root)).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });
  it('an event-loop stall alone does not lose the lock (mtime still ours) and never throws from a timer', async () => {
    const s = await JsonStore.open({ dir: join(root, 'stall'), lock: { staleMs: 2000, updateMs: 1000, waitMs: 5000 } });
    const S = z.object({ a: z.number() });
    await s.write('doc', S, { a: 1 });
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown) => uncaught.push(e);
    process.on('uncaughtException', onUncaught);
    try {
      await s.update('doc', S, async () => {
        const end = Date.now() + 2300;
        while (Date.now() < end); // stall past staleMs while holding the lock
        await sleep(50);
        return { a: 2 };
      });
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    expect(uncaught).toEqual([]);
    expect(await s.read('doc', S)).toEqual({ a: 2 });
  }, 30_000);
});

describe('crash safety with real processes', () => {
  // Each trial is one interrupted document. Node start-up dominates the cost on 2 shared
  // cores, so each SIGKILLed writer runs FILES concurrent write loops (each interrupted at its
  // own point): 500 documents with 125 kills by default.
  const TRIALS = Number(process.env.SMOOTHTASK_STORE_KILL_TRIALS ?? 500);
  const FILES = Number(process.env.SMOOTHTASK_STORE_KILL_FILES ?? 4);
  it(`${TRIALS} documents interrupted by SIGKILLs of their writer at random points are never unreadable`, async () => {
    const dir = join(root, 'kill');
    await mkdir(dir, { recursive: true });
    const BATCH = 6;
    const kills = Math.ceil(TRIALS / FILES);
    let advanced = 0;
    let checked = 0;
    for (let b = 0; b < kills; b += BATCH) {
      await Promise.all(
        Array.from({ length: Math.min(BATCH, kills - b) }, async (_, j) => {
          const files = Array.from({ length: FILES }, (_, f) => join(dir, `doc-${b + j}-${f}.json`));
          for (const file of files) await writeFileDurable(file, JSON.stringify({ n: 0, writer: 0, pad: '' }));
          const child = await startChild(light, files, 'ready', 60_000);
          children.add(child);
          await sleep(Math.random() * 40);
          child.kill('SIGKILL');
          await exited(child);
          children.delete(child);
          for (const file of files) {
            const d = Doc.parse(JSON.parse(await readFile(file, 'utf8'))); // throws if torn
            checked++;
            if (d.n > 0) advanced++;
            expect(d.pad.length === 0 || d.pad.length === 16 * 1024).toBe(true);
          }
        }),
      );
    }
    expect(checked).toBe(kills * FILES);
    // the kills landed while the children's write loops were running (each completed a first write before 'ready')
    expect(advanced).toBe(checked);
    console.log(`kill trials: ${kills} SIGKILLs, ${checked} documents checked, ${advanced} advanced by the child before its kill`);
  }, 420_000); // ~165 s measured at a load average of 40 on 2 cores

  it('20 SIGKILLs of a full store.update() writer (lock + validation) leave a readable document', async () => {
    const dir = join(root, 'kill-full');
    const s = await JsonStore.open({ dir });
    let advanced = 0;
    await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const key = `doc-${i}`;
        await s.write(key, Doc, { n: 0, writer: 0, pad: '' });
        const child = await startChild(bundle, ['loop', dir, key], 'ready', 60_000);
        children.add(child);
        // Kill at a random point once the writer is under way (on a loaded machine a fixed
        // delay can pass before its first update even starts).
        const t0 = Date.now();
        while (Date.now() - t0 < 15_000 && !((await s.read(key, Doc))!.n > 0)) await sleep(5);
        await sleep(Math.random() * 30);
        child.kill('SIGKILL');
        await exited(child);
        children.delete(child);
        const d = await s.read(key, Doc);
        if (d!.n > 0) advanced++;
      }),
    );
    expect(advanced).toBeGreaterThan(0);
  }, 90_000);

  it('a process writing without pause hands the store lease to a waiting process within a second', async () => {
    const dir = join(root, 'handover');
    const s = await JsonStore.open({ dir, lock: { staleMs: 20_000, updateMs: 5000, waitMs: 30_000 } });
    let writing = true;
    let mine = 0;
    const loop = (async () => {
      while (writing) {
        await s.update('mine', Doc, (d) => ({ n: (d?.n ?? 0) + 1, writer: process.pid, pad: '' }));
        mine++;
      }
    })();
    try {
      while (mine < 20) await sleep(5);
      // `once` waits at most 5 s for the lock: without the hand-over it would fail, since this
      // process never stops writing (and its lease never goes stale).
      const t0 = Date.now();
      const child = await startChild(bundle, ['once', dir, 'theirs'], 'start', 30_000);
      children.add(child);
      const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
      children.delete(child);
      expect(code).toBe(0);
      expect(Date.now() - t0).toBeLessThan(4000);
      const before = mine;
      await sleep(300);
      expect(mine).toBeGreaterThan(before); // and this process got the lease back
    } finally {
      writing = false;
      await loop;
    }
    expect((await s.read('theirs', Doc))!.n).toBe(1);
  }, 60_000);

  it('two processes updating the same document concurrently lose no update', async () => {
    const dir = join(root, 'concurrent');
    const N = 150;
    const a = startChild(bundle, ['incr', dir, 'counter', String(N)], 'done', 60_000);
    const b = startChild(bundle, ['incr', dir, 'counter', String(N)], 'done', 60_000);
    await Promise.all([a, b]);
    const s = await JsonStore.open({ dir });
    expect((await s.read('counter', Doc))!.n).toBe(2 * N);
  }, 60_000);

  it('a lock left by a SIGKILLed holder is taken over at once (the owner is gone), well before it goes stale', async () => {
    const dir = join(root, 'stale');
    const holder = await startChild(bundle, ['hold', dir, 'held'], 'locked', 60_000);
    children.add(holder);
    expect((await stat(join(dir, '.store.lock'))).isDirectory()).toBe(true);
    holder.kill('SIGKILL');
    await exited(holder);
    children.delete(holder);
    const s = await JsonStore.open({ dir, lock: { staleMs: 20_000, updateMs: 5000, waitMs: 20_000 } });
    const t0 = Date.now();
    await s.write('held', Doc, { n: 1, writer: process.pid, pad: '' });
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect((await s.read('held', Doc))!.n).toBe(1);
  }, 30_000);

  it('a lock taken over during a stall (proper-lockfile #71): the stalled writer abandons its write, the other one wins', async () => {
    const dir = join(root, 'takeover');
    const s = await JsonStore.open({ dir, lock: { staleMs: 2000, updateMs: 1000, waitMs: 20_000 } });
    await s.write('doc', Doc, { n: 10, writer: process.pid, pad: '' });
    const compromised: unknown[] = [];
    const dc = await import('node:diagnostics_channel');
    const onC = (m: unknown) => compromised.push(m);
    dc.subscribe(STORE_CHANNELS.lockCompromised, onC);
    let other: import('node:child_process').ChildProcess | undefined;
    const err = await s
      .update('doc', Doc, async (d) => {
        // Another process queues up for the lock while we hold it ...
        other = await startChild(bundle, ['incr', dir, 'doc', '1'], 'start', 60_000);
        children.add(other);
        await sleep(300);
        // ... then our event loop stalls past staleMs: it takes the lock over and writes.
        const end = Date.now() + 4500;
        while (Date.now() < end);
        return { ...d!, n: d!.n + 100 };
      })
      .catch((e: unknown) => e);
    await exited(other!);
    children.delete(other!);
    dc.unsubscribe(STORE_CHANNELS.lockCompromised, onC);
    expect(err).toBeInstanceOf(StoreLockError);
    expect((err as Error).message).toMatch(/compromised/);
    const final = await s.read('doc', Doc);
    expect(final!.n).toBe(11); // the other process's increment, not clobbered by ours
    expect(final!.writer).toBe(other!.pid);
  }, 60_000);
});

describe('task persistence', () => {
  it('every transition is on disk before listeners hear of it', async () => {
    const s = await JsonStore.open({ dir: join(root, 'tp') });
    const q = new TaskQueue({ persistence: new StoreTaskPersistence(s), dataDir: join(root, 'tp-work') });
    q.registerExecutor('ok', { run: async () => ({}) });
    const mismatches: string[] = [];
    let checked = 0;
    q.onTransition((e) => {
      // synchronous read of the journal in the listener: its last line for the task must already
      // hold the transition heard (a write may carry two: an attempt's start goes with its run)
      const onDisk = journaled(join(s.dir, 'tasks')).get(e.task.id)!;
      checked++;
      const n = e.task.history.length;
      const h = onDisk.history[n - 1];
      if (onDisk.history.length < n || h?.to !== e.to || h.at !== e.at) mismatches.push(`${e.to} vs ${onDisk.state}`);
    });
    await Promise.all([q.submit({ kind: 'ok' }).done, q.submit({ kind: 'ok' }).done]);
    await q.close();
    expect(checked).toBe(8);
    expect(mismatches).toEqual([]);
  });

  it('a damaged snapshot line and a torn legacy document are reported and left out; the queue starts with the rest', async () => {
    const dir = join(root, 'corrupt-tasks');
    const s = await JsonStore.open({ dir });
    const q1 = new TaskQueue({ persistence: new StoreTaskPersistence(s), dataDir: join(dir, 'w') });
    q1.registerExecutor('ok', { run: async () => ({}) });
    await Promise.all(['good', 'bad', 'good2'].map((id) => q1.submit({ kind: 'ok', id }).done));
    await q1.close(); // writes the snapshot
    const snap = (await readdir(join(dir, 'tasks'))).filter((n) => n.startsWith('.snapshot-'));
    expect(snap).toHaveLength(1);
    // damage one byte inside the record of 'bad' (something outside our control)
    const path = join(dir, 'tasks', snap[0]!);
    const bytes = await readFile(path);
    const at = bytes.indexOf('"id":"bad"');
    expect(at).toBeGreaterThan(0);
    bytes[at + 7] = 'B'.charCodeAt(0);
    await writeFile(path, bytes);
    await writeFile(join(dir, 'tasks', 'old.json'), '{"id":"old","state":"runn'); // a torn document of an earlier version
    const reported: StoreCorruptError[] = [];
    const q2 = new TaskQueue({ persistence: new StoreTaskPersistence(s, { onCorrupt: (e) => reported.push(e) }), dataDir: join(dir, 'w') });
    await q2.ready;
    expect(q2.get('good')?.state).toBe('succeeded');
    expect(q2.get('good2')?.state).toBe('succeeded');
    expect(q2.get('bad')).toBeUndefined();
    expect(reported.map((e) => [e.code, e.kind]).sort()).toEqual([
      ['ERR_STORE_CORRUPT', 'json'],
      ['ERR_STORE_CORRUPT', 'json'],
    ]);
    const legacy = reported.find((e) => e.movedTo)!;
    expect(await readFile(legacy.movedTo!, 'utf8')).toBe('{"id":"old","state":"runn');
    await q2.close();
  });

  it('close() records running tasks as queued again (policy requeue) and a new queue runs them; forget() removes records', async () => {
    const dir = join(root, 'close-requeue');
    const s = await JsonStore.open({ dir });
    const q1 = new TaskQueue({ persistence: new StoreTaskPersistence(s), dataDir: join(dir, 'w') });
    q1.registerExecutor('sleep', { run: async (ctx) => ((await sleep(60_000, undefined, { signal: ctx.signal }).catch(() => {})), {}) });
    const h = q1.submit({ kind: 'sleep', id: 'long' });
    while (q1.get('long')?.state !== 'running') await sleep(5);
    await q1.close();
    expect((await h.done).state).toBe('queued');
    const recorded = async (id: string) => (await StoreTaskPersistence.inspect(s)).find((r) => r.id === id);
    expect((await recorded('long'))!.state).toBe('queued');
    const q2 = new TaskQueue({ persistence: new StoreTaskPersistence(s), dataDir: join(dir, 'w') });
    q2.registerExecutor('sleep', { run: async () => ({}) });
    const r = await q2.wait('long');
    expect(r.state).toBe('succeeded');
    expect(r.history.map((x) => x.event)).toEqual(['enqueue', 'start', 'run', 'requeue', 'start', 'run', 'succeed']);
    expect(await q2.forget('long')).toBe(true);
    expect(await recorded('long')).toBeUndefined();
    expect(q2.get('long')).toBeUndefined();
    await q2.close();
  });

  it('a queue SIGKILLed during group commits and checkpoints loses no acknowledged transition', async () => {
    const dir = join(root, 'burst');
    let acked = 0;
    let checkpointsSeen = 0;
    for (let trial = 0; trial < 8; trial++) {
      const child = await startChild(bundle, ['burst', dir, `t${trial}`], 'ready', 60_000);
      children.add(child);
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      await sleep(20 + Math.random() * 200);
      child.kill('SIGKILL');
      await exited(child);
      children.delete(child);
      const last = new Map<string, number>();
      for (const line of out.split('\n')) {
        const [id, n] = line.split(' ');
        if (id && n && id !== 'ready') last.set(id, Math.max(last.get(id) ?? 0, Number(n)));
      }
      checkpointsSeen += (await readdir(join(dir, 'tasks'))).filter((n) => n.startsWith('.snapshot-')).length;
      const s = await JsonStore.open({ dir });
      const p = new StoreTaskPersistence(s); // takes over from the dead writer
      const recs = new Map((await p.loadAll()).map((r) => [r.id, r]));
      await p.close();
      const lost = [...last].filter(([id, n]) => (recs.get(id)?.history.length ?? 0) < n);
      expect(lost).toEqual([]);
      acked += last.size;
    }
    expect(acked).toBeGreaterThan(8 * 50);
    expect(checkpointsSeen).toBeGreaterThan(0);
  }, 120_000);

  it('a torn journal tail is ignored; a second live writer is refused; documents of the earlier format are folded in', async () => {
    const dir = join(root, 'journal-misc');
    const s = await JsonStore.open({ dir });
    const mem = new TaskQueue({ dataDir: join(dir, 'w') });
    mem.registerExecutor('k', { run: async () => ({}) });
    const template = await mem.submit({ kind: 'k', id: 'template' }).done;
    await mem.close();
    const rec = (id: string, state: TaskRecord['state'] = 'queued'): TaskRecord => ({ ...template, id, state });
    // earlier format: one document per task
    await s.write('tasks/legacy', TaskRecordSchema, rec('legacy', 'succeeded'));
    const p1 = new StoreTaskPersistence(s);
    expect((await p1.loadAll()).map((r) => r.id)).toEqual(['legacy']);
    expect(await s.list('tasks')).toEqual([]); // folded into the snapshot
    await p1.save(rec('a'));
    await p1.save(rec('b'));
    // a second queue on the same records, live: refused with a typed error
    const p2 = new StoreTaskPersistence(s);
    await expect(p2.loadAll()).rejects.toBeInstanceOf(StoreLockError);
    await expect(p2.save(rec('c'))).rejects.toBeInstanceOf(StoreLockError);
    // a crash in the middle of an append: half a line at the end of the journal
    const journal = join(dir, 'tasks', (await readdir(join(dir, 'tasks'))).find((n) => n.startsWith('.journal-'))!);
    const end = (await readFile(journal)).indexOf(0); // the lines end where the preallocated zeros start
    expect(end).toBeGreaterThan(0);
    const fh = await open(journal, 'r+');
    await fh.write(Buffer.from('1234abcd 999 {"id":"torn","op":"put","rec":{"id":"torn"'), 0, undefined, end);
    await fh.close();
    const replays: Array<{ droppedBytes: number }> = [];
    const onReplay = (m: unknown) => replays.push(m as { droppedBytes: number });
    subscribe(TASK_PERSISTENCE_CHANNELS.replay, onReplay);
    // the writer "dies" (its claim names a pid that is gone): take over
    await writeFile(join(dir, 'tasks', '.writer'), '999999999 1 x');
    const p3 = new StoreTaskPersistence(s);
    expect((await p3.loadAll()).map((r) => r.id).sort()).toEqual(['a', 'b', 'legacy']);
    unsubscribe(TASK_PERSISTENCE_CHANNELS.replay, onReplay);
    expect(replays.map((r) => r.droppedBytes)).toEqual([55]); // the torn line, reported
    await p3.remove('a');
    await p3.close();
    expect((await StoreTaskPersistence.inspect(s)).map((r) => r.id).sort()).toEqual(['b', 'legacy']);
    expect((await readdir(join(dir, 'tasks'))).filter((n) => n.startsWith('.')).map((n) => n.replace(/\d+/, 'N'))).toEqual(['.snapshot-N.log']);
  });

  it('a queue process SIGKILLed mid-task: restart requeues (or fails) what was running, never leaves it running', async () => {
    for (const policy of ['requeue', 'fail'] as const) {
      const dir = join(root, `crash-${policy}`);
      const child = await startChild(bundle, ['queue', dir], 'running crashy', 60_000);
      children.add(child);
      child.kill('SIGKILL');
      await exited(child);
      children.delete(child);
      const s = await JsonStore.open({ dir });
      const persistence = new StoreTaskPersistence(s);
      const before = new Map((await persistence.loadAll()).map((r) => [r.id, r]));
      expect(before.get('crashy')?.state).toBe('running');
      expect(before.get('waiting')?.state).toBe('queued');
      const q = new TaskQueue({ persistence, recovery: policy, dataDir: join(dir, 'work2') });
      const ran: string[] = [];
      q.registerExecutor('sleep', { run: async (ctx) => { ran.push(ctx.task.id); return {}; } });
      await q.ready;
      const recs: TaskRecord[] = await Promise.all(['crashy', 'waiting', 'waiting2'].map((id) => q.wait(id)));
      await q.close();
      const crashy = recs[0]!;
      if (policy === 'requeue') {
        expect(crashy.state).toBe('succeeded');
        expect(crashy.history.map((h) => h.event)).toContain('requeue');
        expect(ran.sort()).toEqual(['crashy', 'waiting', 'waiting2']);
      } else {
        expect(crashy.state).toBe('failed');
        expect(crashy.error?.code).toBe('ERR_TASK_INTERRUPTED');
        expect(ran.sort()).toEqual(['waiting', 'waiting2']);
      }
      expect(recs.slice(1).map((r) => r.state)).toEqual(['succeeded', 'succeeded']);
      const after = await persistence.loadAll();
      expect(after.filter((r) => r.state === 'running' || r.state === 'starting')).toEqual([]);
    }
  }, 60_000);
});
