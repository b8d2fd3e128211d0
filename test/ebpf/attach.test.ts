import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attachFeatures, attachProgram, autoAttachOptions } from '../../lib/ebpf/attach.js';
import { u32, u64 } from '../../lib/ebpf/codec.js';
import { ClosedError, UnsupportedError } from '../../lib/ebpf/errors.js';
import { BpfIterLink } from '../../lib/ebpf/link.js';
import { loadObject } from '../../lib/ebpf/load.js';
import type { BpfObject } from '../../lib/ebpf/object.js';
import type { BpfMap } from '../../lib/ebpf/map.js';
import { bpfObjectDir } from '../../lib/native/addon.js';

const HIT = { tp: 0, rawTp: 1, tpBtf: 2, uprobe: 3, uprobeArgs: 4, uretprobe: 5, perf: 6, cgroup: 7 } as const;

let obj: BpfObject;
let hits: BpfMap<number, bigint>;
let dir: string;
let target: string;

function getppidTimes(n: number): void {
  // process.ppid is a getter over uv_os_getppid(): one getppid() syscall per read.
  let x = 0;
  for (let i = 0; i < n; i++) x += process.ppid;
  expect(x).toBeGreaterThan(0);
}

function hit(k: number): bigint {
  return hits.get(k) ?? 0n;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'smoothtask-dp-attach-'));
  target = join(dir, 'target');
  execFileSync('cc', ['-O1', '-g', '-o', target, join(import.meta.dirname, '..', 'fixtures', 'dp', 'target.c')]);
  obj = await loadObject(join(bpfObjectDir(), 'test', 'dp_attach.bpf.o'), { cache: false });
  hits = obj.map('hits', { key: u32, value: u64 });
  using config = obj.map('dp_config', { key: u32, value: u32 });
  config.set(0, process.pid);
});

afterAll(() => {
  hits?.close();
  obj?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('attachProgram on a real kernel', () => {
  it('tracepoint (auto from the section) sees the getppid() calls the test makes, and stops after close', () => {
    const link = attachProgram(obj.program('dp_tp').info);
    expect(link.type).toBe('tracepoint');
    const before = hit(HIT.tp);
    getppidTimes(500);
    expect(hit(HIT.tp) - before).toBe(500n);
    link.close();
    link.close();
    expect(link.closed).toBe(true);
    const after = hit(HIT.tp);
    getppidTimes(100);
    expect(hit(HIT.tp)).toBe(after);
  });

  it('tracepoint with explicit options', () => {
    using link = attachProgram(obj.program('dp_tp').info, { type: 'tracepoint', category: 'syscalls', name: 'sys_enter_getppid' });
    const before = hit(HIT.tp);
    getppidTimes(50);
    expect(hit(HIT.tp) - before).toBe(50n);
    expect(link.type).toBe('tracepoint');
  });

  it('raw_tp and tp_btf count the same syscalls', () => {
    using raw = attachProgram(obj.program('dp_raw_tp').info);
    using btf = attachProgram(obj.program('dp_tp_btf').info);
    expect([raw.type, btf.type]).toEqual(['raw_tracepoint', 'tp_btf']);
    const r0 = hit(HIT.rawTp);
    const b0 = hit(HIT.tpBtf);
    getppidTimes(300);
    expect(hit(HIT.rawTp) - r0).toBe(300n);
    expect(hit(HIT.tpBtf) - b0).toBe(300n);
  });

  it('uprobe and uretprobe on a function of a binary the test compiled', () => {
    using up = attachProgram(obj.program('dp_uprobe').info, { type: 'uprobe', binary: target, symbol: 'smoothtask_dp_target' });
    using ret = attachProgram(obj.program('dp_uretprobe').info, { type: 'uprobe', binary: target, symbol: 'smoothtask_dp_target', retprobe: true });
    expect(ret.type).toBe('uretprobe');
    const n = 1000;
    const out = execFileSync(target, ['calls', String(n)], { encoding: 'utf8' });
    const expectedArgs = BigInt((n * (n + 1)) / 2);
    expect(BigInt(out.trim())).toBe(expectedArgs * 2n);
    expect(hit(HIT.uprobe)).toBe(BigInt(n));
    expect(hit(HIT.uprobeArgs)).toBe(expectedArgs);
    expect(hit(HIT.uretprobe)).toBe(expectedArgs * 2n);
  });

  it('uprobe limited to another pid does not fire for this run', () => {
    const before = hit(HIT.uprobe);
    {
      using _ = attachProgram(obj.program('dp_uprobe').info, { type: 'uprobe', binary: target, symbol: 'smoothtask_dp_target', pid: process.pid });
      execFileSync(target, ['calls', '10']);
    }
    expect(hit(HIT.uprobe)).toBe(before);
  });

  it('perf_event (software cpu-clock, every CPU, one Link) samples a busy child', async () => {
    using config = obj.map('dp_config', { key: u32, value: u32 });
    using link = attachProgram(obj.program('dp_perf').info, { type: 'perf_event', event: { kind: 'software', name: 'cpu-clock' }, frequency: 997 });
    expect(link.type).toBe('perf_event');
    const before = hit(HIT.perf);
    const child = spawn(target, ['spin', '400'], { stdio: 'ignore' });
    config.set(1, child.pid as number);
    const code = await new Promise<number | null>((res) => child.on('exit', res));
    expect(code).toBe(0);
    // ~997 Hz for 0.4 s of one busy CPU: hundreds of samples; demand a clear signal only.
    expect(hit(HIT.perf) - before).toBeGreaterThan(20n);
  });

  it('perf_event: hardware events are refused with UnsupportedError when the VM has no PMU', () => {
    let link;
    try {
      link = attachProgram(obj.program('dp_perf').info, { type: 'perf_event', event: { kind: 'hardware', name: 'cpu-cycles' }, period: 1_000_000 });
    } catch (e) {
      expect(e).toBeInstanceOf(UnsupportedError);
      expect((e as UnsupportedError).feature).toBe('hardware perf events');
      return;
    }
    link.close(); // a host with a PMU: attaching worked
  });

  it('iterator (task) lists this process; read() runs it off the main thread each time', async () => {
    const link = attachProgram(obj.program('dp_iter_task').info);
    expect(link).toBeInstanceOf(BpfIterLink);
    const it = link as BpfIterLink;
    const text = await it.readText();
    const lines = text.trim().split('\n');
    expect(lines.length).toBeGreaterThan(5);
    expect(lines).toContain(`${process.pid} node`);
    const again = await it.readText();
    expect(again.split('\n')).toContain(`${process.pid} node`);
    it.close();
    await expect(it.read()).rejects.toBeInstanceOf(ClosedError);
  });

  it('iterator readSync() runs it on this thread: the same records as read(); ClosedError once closed', async () => {
    const it = attachProgram(obj.program('dp_iter_task').info) as BpfIterLink;
    const lines = it.readSync().toString('utf8').trim().split('\n');
    expect(lines).toContain(`${process.pid} node`);
    // Both walk the same task list: the same processes, give or take one that came or went.
    const async = (await it.readText()).trim().split('\n');
    expect(Math.abs(async.length - lines.length)).toBeLessThanOrEqual(5);
    it.close();
    expect(() => it.readSync()).toThrow(ClosedError);
  });

  it('iterator limited to one pid (task iterator link info)', async () => {
    using link = attachProgram(obj.program('dp_iter_task').info, { type: 'iterator', pid: process.pid }) as BpfIterLink;
    const lines = (await link.readText()).trim().split('\n');
    expect(lines).toEqual([`${process.pid} node`]);
  });

  it('cgroup (sock_create) counts sockets made by a child placed in a test cgroup', () => {
    const cg = `/sys/fs/cgroup/unified/smoothtask-dp-${process.pid}`;
    mkdirSync(cg);
    try {
      using link = attachProgram(obj.program('dp_sock_create').info, { type: 'cgroup', path: cg });
      expect(link.type).toBe('cgroup');
      const before = hit(HIT.cgroup);
      execFileSync(target, ['sockets', cg, '7']);
      expect(hit(HIT.cgroup) - before).toBe(7n);
    } finally {
      rmdirSync(cg);
    }
  });

  it('kprobe: UnsupportedError naming kprobe on this kernel (or attaches where it exists)', () => {
    const f = attachFeatures();
    if (f.kprobe) {
      using link = attachProgram(obj.program('dp_kprobe').info);
      expect(link.type).toBe('kprobe');
      return;
    }
    let err: unknown;
    try {
      attachProgram(obj.program('dp_kprobe').info);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UnsupportedError);
    expect((err as UnsupportedError).feature).toBe('kprobe');
    expect((err as Error).message).toMatch(/kprobe/);
  });

  it('auto-attach needs options for plain uprobe / perf_event / cgroup sections', () => {
    expect(() => attachProgram(obj.program('dp_uprobe').info)).toThrow(UnsupportedError);
    expect(() => attachProgram(obj.program('dp_perf').info)).toThrow(/cannot be auto-attached/);
    expect(autoAttachOptions({ section: 'uprobe//usr/lib/libc.so.6:malloc+4', type: 'kprobe', attachType: '' })).toEqual({
      type: 'uprobe',
      binary: '/usr/lib/libc.so.6',
      symbol: 'malloc',
      offset: 4,
      retprobe: false,
    });
    expect(autoAttachOptions({ section: 'tp/sched/sched_switch', type: 'tracepoint', attachType: '' })).toEqual({ type: 'tracepoint', category: 'sched', name: 'sched_switch' });
  });

  it('validates options and names missing targets', () => {
    const info = obj.program('dp_tp').info;
    expect(() => attachProgram(info, { type: 'tracepoint', category: 'nope', name: 'nothing_here' })).toThrow(UnsupportedError);
    expect(() => attachProgram(info, { type: 'perf_event', event: { kind: 'software', name: 'bogus' } })).toThrow(/unknown event name/);
    expect(() => attachProgram(obj.program('dp_uprobe').info, { type: 'uprobe', binary: target, symbol: 'no_such_symbol' })).toThrow(/no_such_symbol/);
  });
});

