// The classification of load failures as a pure function (lib/ebpf/classify.ts): stage and
// errno decide the class; libbpf's WARN lines only name the stage, program or map.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/errors/index.js';
import { parseBtf, codecFromBtfName } from '../../lib/ebpf/btf.js';
import { bytes, field, struct, u64 } from '../../lib/ebpf/codec.js';
import { capsFromCapEff, classifyLoadFailure, programFeature, stageFromWarnings, type FailureProgram, type LoadFailureFacts } from '../../lib/ebpf/classify.js';

const ALL = { bpf: true, perfmon: true, sysAdmin: true };
const NONE = { bpf: false, perfmon: false, sysAdmin: false };
const fentry: FailureProgram = { name: 'on_open', type: 'tracing', attachType: 'trace_fentry', section: 'fentry/do_sys_openat2' };
const fexit: FailureProgram = { name: 'on_exit', type: 'tracing', attachType: 'trace_fexit', section: 'fexit/do_sys_openat2' };
const fmodret: FailureProgram = { name: 'on_ret', type: 'tracing', attachType: 'modify_return', section: 'fmod_ret/x' };
const tpBtf: FailureProgram = { name: 'on_switch', type: 'tracing', attachType: 'trace_raw_tp', section: 'tp_btf/sched_switch' };
const tp: FailureProgram = { name: 'on_enter', type: 'tracepoint', attachType: 'cgroup_inet_ingress', section: 'tracepoint/syscalls/sys_enter_openat' };

function progFail(p: FailureProgram, errno: number, extra = ''): string {
  return `libbpf: prog '${p.name}': BPF program load failed: x\n${extra}libbpf: prog '${p.name}': failed to load: -${errno}\nlibbpf: failed to load object 'o'\n`;
}
const facts = (f: Partial<LoadFailureFacts>): LoadFailureFacts => ({ object: 'o', stage: 'load', errno: 22, warnings: '', caps: ALL, ...f });

describe('classifyLoadFailure', () => {
  it('a BPF trampoline refused with EPERM while holding every capability is UnsupportedError fentry, for fentry, fexit and fmod_ret alike', () => {
    for (const p of [fentry, fexit, fmodret]) {
      const v = classifyLoadFailure(facts({ errno: 1, warnings: progFail(p, 1), programs: [tp, p] }));
      expect(v).toMatchObject({ class: 'unsupported', feature: 'fentry', stage: 'program', program: p.name });
    }
  });

  it('the same limitation through EOPNOTSUPP/ENOTSUPP is named fentry too, never tracing', () => {
    for (const errno of [95, 524]) {
      const v = classifyLoadFailure(facts({ errno, warnings: progFail(fexit, errno), programs: [fexit] }));
      expect(v).toMatchObject({ class: 'unsupported', feature: 'fentry' });
    }
    expect(programFeature(fentry)).toBe('fentry');
    expect(programFeature(tpBtf)).toBe('tp_btf');
  });

  it('a program with an empty name is found by name, and EPERM as root is not PermissionError(CAP_BPF)', () => {
    const unnamed = { ...fentry, name: '' };
    const v = classifyLoadFailure(facts({ errno: 1, warnings: progFail(unnamed, 1), programs: [tp, unnamed] }));
    expect(v.class).toBe('unsupported');
    expect(v.feature).toBe('fentry');
    expect(v.message).toMatch(/unnamed program \(section 'fentry\/do_sys_openat2'\)/);
    // a non-trampoline program refused with EPERM while holding every capability: a policy, not a capability
    const w = classifyLoadFailure(facts({ errno: 1, warnings: progFail({ ...tp, name: '' }, 1), programs: [{ ...tp, name: '' }] }));
    expect(w.class).toBe('permission');
    expect(w.capability).toBe('security policy');
  });

  it('EPERM names the capability that is really missing', () => {
    expect(classifyLoadFailure(facts({ errno: 1, warnings: progFail(tp, 1), programs: [tp], caps: NONE }))).toMatchObject({ class: 'permission', capability: 'CAP_BPF' });
    expect(classifyLoadFailure(facts({ errno: 1, warnings: progFail(tp, 1), programs: [tp], caps: { bpf: true, perfmon: false, sysAdmin: false } }))).toMatchObject({
      class: 'permission',
      capability: 'CAP_PERFMON',
    });
    expect(classifyLoadFailure(facts({ errno: 1, warnings: progFail(fentry, 1), programs: [fentry], caps: NONE }))).toMatchObject({ class: 'permission', capability: 'CAP_BPF' });
  });

  it('a map sized by user space (max_entries 0) points at the mapSizes option', () => {
    const v = classifyLoadFailure(
      facts({
        errno: 22,
        warnings: "libbpf: Error in bpf_create_map_xattr(per_pid):Invalid argument(-22). Retrying without BTF.\nlibbpf: map 'per_pid': failed to create: Invalid argument(-22)\nlibbpf: failed to load object 'o'\n",
        maps: [{ name: 'per_pid', realName: 'per_pid', type: 'hash', maxEntries: 0 }],
      }),
    );
    expect(v).toMatchObject({ class: 'invalid', stage: 'map', map: 'per_pid' });
    expect(v.message).toMatch(/mapSizes/);
    expect(v.message).toMatch(/per_pid/);
    expect(v.message).not.toMatch(/not a usable BPF object/);
    // a sized map refused with EINVAL is not given the mapSizes hint
    const w = classifyLoadFailure(facts({ errno: 22, warnings: "libbpf: map 'm': failed to create: Invalid argument(-22)\n", maps: [{ name: 'm', realName: 'm', type: 'hash', maxEntries: 8 }] }));
    expect(w.class).toBe('invalid');
    expect(w.message).not.toMatch(/mapSizes/);
    // out of memory creating a map is the system's, an unknown map type the kernel's
    expect(classifyLoadFailure(facts({ errno: 12, warnings: "libbpf: map 'm': failed to create: Cannot allocate memory(-12)\n" })).class).toBe('system');
    expect(classifyLoadFailure(facts({ errno: 524, warnings: "libbpf: map 'm': failed to create: x(-524)\n", maps: [{ name: 'm', realName: 'm', type: 'arena', maxEntries: 1 }] }))).toMatchObject({
      class: 'unsupported',
      feature: 'arena map',
    });
  });

  it('verifier rejections keep their log; a CO-RE poison found by the verifier is InvalidObjectError', () => {
    const p = { ...tp, name: 'broken' };
    const vlog = "libbpf: prog 'broken': -- BEGIN PROG LOAD LOG --\nR0 invalid mem access 'map_value_or_null'\nprocessed 7 insns\n-- END PROG LOAD LOG --\n";
    const v = classifyLoadFailure(facts({ errno: 13, warnings: progFail(p, 13, vlog), programs: [p] }));
    expect(v).toMatchObject({ class: 'verifier', program: 'broken' });
    expect(v.log).toMatch(/map_value_or_null/);
    expect(v.message).toMatch(/map_value_or_null/);
    const core = "libbpf: prog 'broken': -- BEGIN PROG LOAD LOG --\nfailed to resolve CO-RE relocation <byte_off> [8] struct x.y\n-- END PROG LOAD LOG --\n";
    expect(classifyLoadFailure(facts({ errno: 22, warnings: progFail(p, 22, core), programs: [p] }))).toMatchObject({ class: 'invalid' });
  });

  it('the stage comes from libbpf lines before the verifier log, never from text inside it', () => {
    const p = { ...tp, name: 'p' };
    // a verifier log that happens to contain words of other stages
    const tricky = "libbpf: prog 'p': -- BEGIN PROG LOAD LOG --\nmap 'x': failed to create\nfailed to perform CO-RE relocations\nR1 type=scalar expected=fp\n-- END PROG LOAD LOG --\n";
    const v = classifyLoadFailure(facts({ errno: 13, warnings: progFail(p, 13, tricky), programs: [p] }));
    expect(v.stage).toBe('program');
    expect(v.class).toBe('verifier');
    expect(stageFromWarnings("libbpf: prog 'q': relo #2: failed to relocate: -3\nlibbpf: failed to perform CO-RE relocations: -3\n", 'load')).toEqual({ stage: 'relocate', program: 'q' });
    expect(stageFromWarnings('anything', 'open')).toEqual({ stage: 'open' });
  });

  it('relocation, kernel BTF, attach target, open and system failures', () => {
    expect(classifyLoadFailure(facts({ errno: 4001, warnings: 'libbpf: failed to parse target BTF: -4001\nlibbpf: failed to perform CO-RE relocations: -4001\n' }))).toMatchObject({
      class: 'invalid',
      stage: 'relocate',
    });
    expect(classifyLoadFailure(facts({ errno: 3, warnings: 'libbpf: failed to find valid kernel BTF\n' }))).toMatchObject({ class: 'unsupported', feature: 'BTF' });
    const t = classifyLoadFailure(facts({ errno: 3, warnings: `libbpf: prog 'on_switch': failed to find kernel BTF type ID of 'nope': -3\nlibbpf: prog 'on_switch': failed to load: -3\n`, programs: [tpBtf] }));
    expect(t).toMatchObject({ class: 'unsupported', feature: 'tp_btf', stage: 'program' });
    expect(classifyLoadFailure(facts({ stage: 'open', errno: 4001, warnings: 'libbpf: elf: garbage\n' }))).toMatchObject({ class: 'invalid', stage: 'open' });
    expect(classifyLoadFailure(facts({ errno: 12, warnings: progFail(tp, 12), programs: [tp] }))).toMatchObject({ class: 'system' });
  });

  it('CapEff parsing', () => {
    expect(capsFromCapEff('1fffeffffff')).toEqual(ALL);
    expect(capsFromCapEff('0')).toEqual(NONE);
    expect(capsFromCapEff('zz')).toEqual(NONE);
    expect(capsFromCapEff((1n << 39n).toString(16))).toEqual({ bpf: true, perfmon: false, sysAdmin: false });
  });
});

describe('plain errors of lib/ebpf are typed', () => {
  it('codec and BTF lookups throw ConfigError', () => {
    expect(() => struct({ a: field(u64, 4) }, 8)).toThrow(ConfigError);
    expect(() => bytes(4).encode(Buffer.alloc(3), new Uint8Array(4), 0)).toThrow(ConfigError);
    // a minimal BTF: header only, no types
    const btf = new Uint8Array(24 + 1);
    const dv = new DataView(btf.buffer);
    dv.setUint16(0, 0xeb9f, true);
    dv.setUint8(2, 1);
    dv.setUint32(4, 24, true);
    dv.setUint32(16, 0, true);
    dv.setUint32(20, 1, true);
    expect(() => codecFromBtfName(parseBtf(btf), 'nope')).toThrow(ConfigError);
  });
});
