import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { array, cstring, field, i32, struct, u32, u64 } from '../../lib/ebpf/codec.js';
import { UnsupportedError } from '../../lib/ebpf/errors.js';
import { loadObjects, loadObject } from '../../lib/ebpf/load.js';
import { probe } from '../../lib/ebpf/probe.js';
import { testObject } from './helpers-loader.js';

// Objects written in the style of bcc libbpf-tools (test/bpf/runqlat_like.bpf.c,
// opensnoop_like.bpf.c): several attach types per object, alternates for older kernels,
// `const volatile` filters. This host has no kprobes and refuses fentry, so those programs
// are left out through `programs`, as a third-party object's user would do.

describe('third-party style objects', () => {
  it('runqlat-like: tp_btf programs load and attach, the kprobe and raw_tp alternates are left out', async () => {
    const p = probe();
    const programs = p.attach.tp_btf.supported ? ['rql_wakeup', 'rql_wakeup_new', 'rql_switch'] : ['rql_switch_raw'];
    using obj = await loadObject(testObject('runqlat_like'), { programs, constants: { targ_ms: false }, cache: false });
    expect(obj.program('rql_finish_switch')).toMatchObject({ loaded: false, type: 'kprobe' });
    for (const name of programs) expect(obj.program(name).loaded).toBe(true);
    const links = obj.attach();
    try {
      const hist = obj.map('hist', { key: u32, value: struct({ slots: field(array(u32, 26), 0), total: field(u64, 104) }, 112) });
      // context switches happen all the time; give them a moment
      let total = 0n;
      for (let i = 0; i < 50 && total === 0n; i++) {
        await sleep(20);
        total = hist.get(0)?.total ?? 0n;
      }
      expect(total).toBeGreaterThan(0n);
      hist.close();
    } finally {
      for (const l of links) l.close();
    }
  });

  it('opensnoop-like: tracepoints and a ring buffer; loading the fentry variant fails typed', async () => {
    const all = await loadObject(testObject('opensnoop_like'), { cache: false }).catch((e: unknown) => e);
    if (!probe().attach.fentry.supported) {
      expect(all).toBeInstanceOf(UnsupportedError);
      expect((all as UnsupportedError).feature).toBe('fentry');
    } else {
      (all as { close(): void }).close();
    }
    using obj = await loadObject(testObject('opensnoop_like'), {
      programs: ['osl_enter_openat', 'osl_exit_openat'],
      constants: { targ_tgid: process.pid },
      cache: false,
    });
    expect(obj.mapInfo('events').type).toBe('ringbuf');
    const links = obj.attach();
    const dir = mkdtempSync(join(tmpdir(), 'st-osl-'));
    const rb = obj.ringBuffer('events', {
      codec: struct({ ts: field(u64, 0), pid: field(u32, 8), ret: field(i32, 12), fname: field(cstring(128), 36) }, 168),
    });
    try {
      const file = join(dir, 'opened-by-test.txt');
      writeFileSync(file, 'x');
      for (let i = 0; i < 5; i++) closeSync(openSync(file, 'r'));
      using opens = obj.map('opens', { key: u32, value: u64 });
      expect(opens.get(process.pid)).toBeGreaterThanOrEqual(5n);
      const seen: string[] = [];
      const deadline = Date.now() + 5000;
      for await (const ev of rb) {
        expect(ev.pid).toBe(process.pid);
        seen.push(ev.fname);
        if (seen.filter((f) => f === file).length >= 5 || Date.now() > deadline) break;
      }
      expect(seen.filter((f) => f === file).length).toBe(5);
    } finally {
      rb.close();
      for (const l of links) l.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('minimalKernelBtf: CO-RE against a minimal kernel BTF made with bpftool, and the program works', async () => {
    if (!existsSync('/usr/sbin/bpftool') && !existsSync('/usr/local/sbin/bpftool')) return; // bpftool not installed
    // a TMPDIR of this test (os.tmpdir() reads it on each call), no XDG_RUNTIME_DIR
    const saved = { TMPDIR: process.env.TMPDIR, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR };
    const tmp = mkdtempSync(join(tmpdir(), 'st-minbtf-'));
    process.env.TMPDIR = tmp;
    delete process.env.XDG_RUNTIME_DIR;
    const btfDir = join(tmp, `smoothtask-${process.geteuid?.() ?? 0}`, 'btf');
    // trusted bytes with a program selection: only the raw_tp program, which needs no attach target
    (await loadObject(testObject('runqlat_like'), { cache: false, programs: ['rql_switch_raw'] })).close();
    using obj = await loadObject(testObject('runqlat_like'), { cache: false, programs: ['rql_switch_raw'], minimalKernelBtf: true });
    const made = readdirSync(btfDir).filter((f) => f.endsWith('.btf'));
    expect(made.length).toBeGreaterThan(0);
    const links = obj.attach();
    try {
      using hist = obj.map('hist', { key: u32, value: struct({ slots: field(array(u32, 26), 0), total: field(u64, 104) }, 112) });
      let total = 0n;
      for (let i = 0; i < 50 && total === 0n; i++) {
        await sleep(20);
        total = hist.get(0)?.total ?? 0n;
      }
      expect(total).toBeGreaterThan(0n);
    } finally {
      for (const l of links) l.close();
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('loads both third-party objects and a bundled one together with loadObjects', async () => {
    const res = await loadObjects(
      [
        { source: testObject('runqlat_like'), options: { programs: ['rql_switch'] } },
        { source: testObject('opensnoop_like'), options: { programs: ['osl_enter_openat', 'osl_exit_openat'] } },
      ],
      { cache: false },
    );
    expect(res.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled']);
    for (const r of res) if (r.status === 'fulfilled') r.value.close();
  });
});
