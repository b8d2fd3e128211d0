/**
 * Classification of load failures: a pure function from the facts of a failure (the stage
 * that failed, the errno, libbpf's warning lines, the programs and maps involved, the
 * process's capabilities) to the class of error and its details.
 *
 * The class comes from the stage and the errno. Text is read only from libbpf's WARN lines,
 * which are the same at every `logLevel` (debug lines are never looked at), and only to find
 * the stage and the name of the program or map, and to word the message. See the table in
 * docs/ebpf-loader.md.
 * @module
 */
import { constants } from 'node:os';

/** Where a load failed. */
export type LoadStage =
  /** `bpf_object__open`: the ELF, its BTF or its sections. */
  | 'open'
  /** Loading the kernel's BTF (needed for CO-RE and BTF attach targets). */
  | 'btf'
  /** Creating or initialising a map. */
  | 'map'
  /** CO-RE and other relocations. */
  | 'relocate'
  /** `BPF_PROG_LOAD` of one program (including its attach target). */
  | 'program'
  /** Attaching a loaded program. */
  | 'attach'
  /** Somewhere in `bpf_object__load` that libbpf did not name. */
  | 'load';

/** One program of the failed object, as the addon reports it. */
export interface FailureProgram {
  /** Program name (may be empty in a malformed or hand-made object). */
  name: string;
  /** libbpf's program type name, e.g. `tracing`, `kprobe`, `tracepoint`. */
  type: string;
  /** libbpf's expected attach type name, e.g. `trace_fentry` (meaningful for tracing, lsm). */
  attachType: string;
  /** ELF section, e.g. `fentry/do_sys_openat2`. */
  section: string;
}

/** One map of the failed object, as the addon reports it. */
export interface FailureMap {
  /** libbpf's map name (internal maps are prefixed with the object name). */
  name: string;
  /** The name in the object (`.rodata` for internal maps). */
  realName: string;
  /** libbpf's map type name, e.g. `hash`, `ringbuf`. */
  type: string;
  /** `max_entries` at the time of the load (0: meant to be sized by user space). */
  maxEntries: number;
}

/** Capabilities the process held. */
export interface FailureCaps {
  /** CAP_BPF. */
  bpf: boolean;
  /** CAP_PERFMON. */
  perfmon: boolean;
  /** CAP_SYS_ADMIN. */
  sysAdmin: boolean;
}

/** The facts of one failed load. */
export interface LoadFailureFacts {
  /** Object name. */
  object: string;
  /** `open` or `load` as the addon saw it (refined from the warnings), or an exact stage. */
  stage: LoadStage;
  /** Positive errno (libbpf's own codes are 4000 and up). */
  errno: number;
  /** libbpf's WARN and INFO lines (never its DEBUG lines). */
  warnings: string;
  /** Programs being loaded. */
  programs?: FailureProgram[];
  /** Maps of the object. */
  maps?: FailureMap[];
  /** Capabilities of the process; all held when absent. */
  caps?: FailureCaps;
}

/** The error class a failure maps to. */
export type LoadFailureClass = 'verifier' | 'permission' | 'unsupported' | 'invalid' | 'system';

/** What {@link classifyLoadFailure} decides. */
export interface LoadFailureVerdict {
  /** Error class: VerifierError, PermissionError, UnsupportedError, InvalidObjectError or a system BpfError. */
  class: LoadFailureClass;
  /** The stage that failed (refined). */
  stage: LoadStage;
  /** Human-readable message. */
  message: string;
  /** Positive errno. */
  errno: number;
  /** The failed program, when one is known. */
  program?: string;
  /** The failed map, when one is known. */
  map?: string;
  /** Missing feature (`unsupported`). */
  feature?: string;
  /** Missing capability or policy (`permission`). */
  capability?: string;
  /** The program's verifier log (`verifier`, and CO-RE failures found by the verifier). */
  log?: string;
  /** True when the log was cut to its last 64 MiB. */
  truncated?: boolean;
}

const E = constants.errno;
const ENOTSUPP = 524; // kernel-internal, returned by bpf()
/** Errnos that say the system ran short or was interrupted, not that the object is bad. */
const SYSTEM_ERRNOS = new Set([E.ENOMEM, E.EMFILE, E.ENFILE, E.EBUSY, E.EAGAIN, E.EINTR, E.ENOSPC, E.EFAULT]);
const UNSUPPORTED_ERRNOS = new Set([E.EOPNOTSUPP, ENOTSUPP, E.ENOSYS]);
const MAX_LOG = 64 * 1024 * 1024;

/** Program types whose load needs CAP_PERFMON besides CAP_BPF. */
const PERFMON_TYPES = new Set(['kprobe', 'tracepoint', 'raw_tracepoint', 'raw_tracepoint_writable', 'tracing', 'perf_event', 'lsm']);

/**
 * The feature name of a program's kind, the same for every object: every BPF-trampoline
 * program (fentry, fexit, fmod_ret) is `fentry`, the name {@link probe} uses.
 */
export function programFeature(p: Pick<FailureProgram, 'type' | 'attachType'> | undefined): string {
  if (!p || !p.type) return 'program type';
  switch (p.type) {
    case 'tracing':
      if (p.attachType === 'trace_raw_tp') return 'tp_btf';
      if (p.attachType === 'trace_iter') return 'iterator';
      return 'fentry'; // trace_fentry, trace_fexit, modify_return: all BPF trampolines
    case 'raw_tracepoint':
    case 'raw_tracepoint_writable':
      return 'raw_tp';
    case 'ext':
      return 'freplace';
    default:
      return p.type;
  }
}

/** Whether the program is attached through a BPF trampoline. */
function isTrampoline(p: FailureProgram | undefined): boolean {
  return !!p && ((p.type === 'tracing' && programFeature(p) === 'fentry') || p.type === 'lsm' || p.type === 'ext');
}

/** The capability missing to load `p`, or undefined when the process holds all it needs. */
export function missingCapability(p: Pick<FailureProgram, 'type'> | undefined, caps: FailureCaps): string | undefined {
  if (!caps.bpf && !caps.sysAdmin) return 'CAP_BPF';
  if (p && PERFMON_TYPES.has(p.type) && !caps.perfmon && !caps.sysAdmin) return 'CAP_PERFMON';
  if (!caps.sysAdmin && !(caps.bpf && caps.perfmon)) return 'CAP_SYS_ADMIN';
  return undefined;
}

/** Capabilities from the hex `CapEff` of /proc/<pid>/status. */
export function capsFromCapEff(hex: string): FailureCaps {
  let v = 0n;
  try {
    v = BigInt(`0x${hex || '0'}`);
  } catch {
    v = 0n;
  }
  const has = (bit: bigint): boolean => ((v >> bit) & 1n) === 1n;
  return { bpf: has(39n), perfmon: has(38n), sysAdmin: has(21n) };
}

/** Stage markers in libbpf 1.x WARN lines, tried in line order: the first failure line wins. */
const STAGE_MARKERS: { re: RegExp; stage: LoadStage; who?: 'program' | 'map' }[] = [
  { re: /map '([^']*)': (?:failed to create|failed to initialize|failed to set|can't|failed to auto)/, stage: 'map', who: 'map' },
  { re: /Error in bpf_create_map_xattr\(([^)]*)\)/, stage: 'map', who: 'map' },
  { re: /failed to create map|failed to initialize internal map|failed to (?:re)?create internal map/, stage: 'map' },
  { re: /(?:failed to find valid kernel BTF|Error loading vmlinux BTF|failed to load kernel BTF|kernel BTF is missing)/, stage: 'btf' },
  { re: /prog '([^']*)': relo #\d+: .*(?:fail|bad|unsupported|unexpected|invalid|error)/i, stage: 'relocate', who: 'program' },
  { re: /failed to perform CO-RE relocations|failed to relocate|failed to parse target BTF|relocation failed/, stage: 'relocate' },
  { re: /prog '([^']*)': (?:BPF program load failed|failed to load|failed to find kernel BTF type ID|failed to prepare load attributes|failed to find target)/, stage: 'program', who: 'program' },
];

/** The stage, program and map named by libbpf's warning lines (first failure line wins). */
export function stageFromWarnings(warnings: string, fallback: LoadStage): { stage: LoadStage; program?: string; map?: string } {
  if (fallback === 'open' || fallback === 'attach') return { stage: fallback };
  for (const line of warnings.split('\n')) {
    if (line.includes('-- BEGIN PROG LOAD LOG --')) break; // the verifier log follows: not libbpf's words
    for (const m of STAGE_MARKERS) {
      const r = m.re.exec(line);
      if (!r) continue;
      const out: { stage: LoadStage; program?: string; map?: string } = { stage: m.stage };
      if (m.who && r[1] !== undefined) out[m.who] = r[1];
      return out;
    }
  }
  return { stage: fallback };
}

/** The verifier log of `program` (or of the first program) printed in the warnings. */
export function verifierLogOf(warnings: string, program: string | undefined): string | undefined {
  const re = /prog '([^']*)': -- BEGIN PROG LOAD LOG --\n([\s\S]*?)(?:-- END PROG LOAD LOG --|$)/g;
  let first: string | undefined;
  for (let m = re.exec(warnings); m; m = re.exec(warnings)) {
    if (first === undefined) first = m[2];
    if (program !== undefined && m[1] === program) return m[2];
  }
  return program === undefined ? first : undefined;
}

/** The warning lines (without the verifier log) that contain `needle`, joined, at most `max`. */
function linesWith(warnings: string, needle: RegExp, max = 4): string {
  const out: string[] = [];
  for (const line of warnings.split('\n')) {
    if (line.includes('-- BEGIN PROG LOAD LOG --')) break;
    if (needle.test(line) && out.length < max) out.push(line.trim());
  }
  return out.join('; ');
}

/** The last libbpf warning line before any verifier log, except the generic last one. */
function lastWarning(warnings: string): string {
  let last = '';
  for (const line of warnings.split('\n')) {
    if (line.includes('-- BEGIN PROG LOAD LOG --')) break;
    if (line.includes('libbpf:') && !line.includes('failed to load object')) last = line.trim();
  }
  return last;
}

/** strerror-like text for the errnos that matter here. */
function errText(errno: number): string {
  const names: Record<number, string> = {
    [E.EPERM]: 'Operation not permitted',
    [E.EACCES]: 'Permission denied',
    [E.EINVAL]: 'Invalid argument',
    [E.ENOMEM]: 'Out of memory',
    [E.E2BIG]: 'Argument list too long',
    [E.ENOENT]: 'No such file or directory',
    [E.ESRCH]: 'No such process',
    [E.EOPNOTSUPP]: 'Operation not supported',
    [ENOTSUPP]: 'Operation not supported',
    [E.ENOSYS]: 'Function not implemented',
    [E.EBUSY]: 'Device or resource busy',
    [E.EAGAIN]: 'Resource temporarily unavailable',
    [E.EINTR]: 'Interrupted system call',
    [E.ENOSPC]: 'No space left on device',
    [E.EMFILE]: 'Too many open files',
    [E.ENFILE]: 'Too many open files in system',
    [E.EFAULT]: 'Bad address',
    4001: 'BPF object format invalid',
    4002: 'Relocation failed',
    4003: 'Kernel verifier blocks program loading',
    4004: 'Kernel version mismatch',
    4005: 'Kernel doesn\u2019t support this program type',
    4006: 'Wrong pid in netlink message',
    4007: 'Invalid netlink sequence',
    4008: 'Incorrect netlink message parsing',
  };
  return names[errno] ?? `errno ${errno}`;
}

function programLabel(name: string | undefined, p: FailureProgram | undefined): string {
  if (name === undefined) return '';
  if (name !== '') return `program '${name}'`;
  return p?.section ? `an unnamed program (section '${p.section}')` : 'an unnamed program';
}

function cutLog(log: string | undefined): { log?: string; truncated?: boolean } {
  if (log === undefined) return {};
  if (log.length > MAX_LOG) return { log: log.slice(log.length - MAX_LOG), truncated: true };
  return { log };
}

const CORE_POISON = /195896080|failed to resolve CO-RE relocation|invalid CO-RE relocation/;

/**
 * Classifies a load failure. Pure: the same facts give the same verdict, and nothing in it
 * reads libbpf's DEBUG output, so the class does not change with `logLevel`.
 */
export function classifyLoadFailure(f: LoadFailureFacts): LoadFailureVerdict {
  const errno = Math.abs(f.errno);
  const caps = f.caps ?? { bpf: true, perfmon: true, sysAdmin: true };
  const found = stageFromWarnings(f.warnings, f.stage);
  const stage = found.stage;
  const obj = `'${f.object}'`;
  const prog = found.program !== undefined ? f.programs?.find((p) => p.name === found.program) : f.programs?.length === 1 ? f.programs[0] : undefined;
  const progName = found.program ?? (f.programs?.length === 1 ? f.programs[0]?.name : undefined);
  const base = { stage, errno, ...(progName !== undefined ? { program: progName } : {}) };
  const w = lastWarning(f.warnings);
  const detail = w ? ` (${w})` : '';
  const system = (): LoadFailureVerdict => ({ ...base, class: 'system', message: `loading ${obj} failed at the ${stage} stage: ${errText(errno)}${detail}` });
  const denied = (p: FailureProgram | undefined, what: string): LoadFailureVerdict => {
    const cap = missingCapability(p, caps);
    if (cap) return { ...base, class: 'permission', capability: cap, message: `loading ${obj} needs ${cap} (${errText(errno)})` };
    if (isTrampoline(p))
      return {
        ...base,
        class: 'unsupported',
        feature: 'fentry',
        message: `${obj}: the kernel refuses ${what} with ${errno === E.EPERM ? 'EPERM' : 'EACCES'} although the process holds CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN: BPF trampolines (fentry/fexit) are unavailable on this host`,
      };
    return {
      ...base,
      class: 'permission',
      capability: 'security policy',
      message: `${obj}: the kernel refuses ${what} with ${errText(errno)} although the process holds CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN (an LSM, kernel lockdown or RLIMIT_MEMLOCK)${detail}`,
    };
  };

  switch (stage) {
    case 'open':
      if (SYSTEM_ERRNOS.has(errno) && errno !== E.EFAULT) return system();
      return { ...base, class: 'invalid', message: `${obj} is not a usable BPF object: ${errText(errno)}${detail}` };

    case 'btf':
      return { ...base, class: 'unsupported', feature: 'BTF', message: `${obj}: the kernel's BTF is not available, and the object needs it (CO-RE or BTF attach targets)${detail}` };

    case 'relocate': {
      const lines = linesWith(f.warnings, /relo #|CO-RE|target BTF/);
      return {
        ...base,
        class: 'invalid',
        message: `CO-RE relocation failed for ${obj}${progName !== undefined ? ` ${programLabel(progName, prog)}` : ''}: the kernel (or the custom BTF) lacks a type or field the program needs${lines ? ` (${lines})` : ''}`,
      };
    }

    case 'map': {
      const mapName = found.map;
      const map = mapName !== undefined ? f.maps?.find((m) => m.name === mapName || m.realName === mapName) : undefined;
      const mb = { ...base, ...(map ? { map: map.realName } : mapName !== undefined ? { map: mapName } : {}) };
      const label = map ? `map '${map.realName}' (${map.type}, max_entries ${map.maxEntries})` : mapName !== undefined ? `map '${mapName}'` : 'a map';
      if (errno === E.EPERM || errno === E.EACCES) return { ...denied(undefined, `creating ${label}`), ...(mb.map ? { map: mb.map } : {}) };
      if (UNSUPPORTED_ERRNOS.has(errno))
        return { ...mb, class: 'unsupported', feature: map ? `${map.type} map` : 'map type', message: `${obj}: the kernel does not support ${label}: ${errText(errno)}` };
      if (SYSTEM_ERRNOS.has(errno) || errno === E.E2BIG) return { ...system(), ...mb };
      if (map && map.maxEntries === 0)
        return {
          ...mb,
          class: 'invalid',
          message: `${obj}: ${label} is meant to be sized by user space: pass its size in the mapSizes option, e.g. { mapSizes: { ${/^[A-Za-z_$][\w$]*$/.test(map.realName) ? map.realName : `'${map.realName}'`}: 1024 } } (the kernel refused max_entries 0: ${errText(errno)})`,
        };
      return { ...mb, class: 'invalid', message: `${obj} is not a usable BPF object: the kernel refused ${label}: ${errText(errno)}${detail}` };
    }

    case 'program': {
      const vlog = verifierLogOf(f.warnings, progName);
      const label = programLabel(progName, prog) || 'a program';
      if (/failed to find kernel BTF type ID|failed to find target/.test(linesWith(f.warnings, /failed to find/))) {
        const feature = programFeature(prog);
        return {
          ...base,
          class: 'unsupported',
          feature: prog ? feature : 'attach target',
          message: `${obj}: the kernel lacks the attach target of ${label} (${linesWith(f.warnings, /failed to find/)})`,
        };
      }
      if (vlog !== undefined && CORE_POISON.test(vlog)) {
        const lines = vlog
          .split('\n')
          .filter((l) => CORE_POISON.test(l))
          .slice(0, 4)
          .join('; ');
        return {
          ...base,
          class: 'invalid',
          ...cutLog(vlog),
          message: `CO-RE relocation failed for ${obj} ${label}: the kernel lacks a type or field the program needs (${lines})`,
        };
      }
      if (errno === E.EPERM || (errno === E.EACCES && !vlog)) return denied(prog, `${label}`);
      if (UNSUPPORTED_ERRNOS.has(errno)) {
        const feature = programFeature(prog);
        return { ...base, class: 'unsupported', feature, message: `${obj}: the kernel does not support ${feature} (${label}): ${errText(errno)}${detail}` };
      }
      if (vlog !== undefined && vlog.trim() !== '') {
        let tail = '';
        for (const line of vlog.split('\n'))
          if (line.trim() !== '' && !/^(processed |verification time|stack depth)/.test(line)) tail = line;
        return { ...base, class: 'verifier', ...cutLog(vlog), message: `the verifier rejected ${label} of ${obj}: ${tail}` };
      }
      if (SYSTEM_ERRNOS.has(errno)) return system();
      return { ...base, class: 'invalid', message: `${obj} is not a usable BPF object: the kernel refused ${label}: ${errText(errno)}${detail}` };
    }

    default: {
      if (errno === E.EPERM || errno === E.EACCES) return denied(prog, 'the object');
      if (UNSUPPORTED_ERRNOS.has(errno)) {
        const feature = programFeature(prog);
        return { ...base, class: 'unsupported', feature, message: `${obj}: the kernel does not support ${feature}: ${errText(errno)}${detail}` };
      }
      if (SYSTEM_ERRNOS.has(errno)) return system();
      return { ...base, class: 'invalid', message: `${obj} is not a usable BPF object: ${errText(errno)}${detail}` };
    }
  }
}
