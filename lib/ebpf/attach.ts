/**
 * Attaching loaded programs: {@link attachProgram} works from the program fd and its info
 * (so programs reopened from pins or the cache attach the same way), for tracepoints, raw
 * tracepoints, tp_btf, uprobes, perf events, iterators, cgroups, and kprobe/fentry where the
 * kernel has them. `auto` reads the section name as libbpf's auto-attach does.
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { validate } from '../errors/validate.js';
import { fromNative, UnsupportedError } from './errors.js';
import { BpfIterLink, BpfLink } from './link.js';
import { dp } from './map.js';
import type { AttachOptions, Link, ProgramInfo } from './types.js';

const SOFTWARE_EVENTS: Record<string, number> = {
  'cpu-clock': 0,
  'task-clock': 1,
  'page-faults': 2,
  'context-switches': 3,
  'cpu-migrations': 4,
  'minor-faults': 5,
  'major-faults': 6,
  'alignment-faults': 7,
  'emulation-faults': 8,
  dummy: 9,
};
const HARDWARE_EVENTS: Record<string, number> = {
  'cpu-cycles': 0,
  instructions: 1,
  'cache-references': 2,
  'cache-misses': 3,
  'branch-instructions': 4,
  'branch-misses': 5,
  'bus-cycles': 6,
  'stalled-cycles-frontend': 7,
  'stalled-cycles-backend': 8,
  'ref-cycles': 9,
};

/** Names accepted by `perf_event` attachments, by kind. */
export const perfEventNames = { software: Object.keys(SOFTWARE_EVENTS), hardware: Object.keys(HARDWARE_EVENTS) } as const;

const pid = z.number().int().positive();
/** Schema of {@link AttachOptions}. */
export const AttachOptionsSchema = z.union([
  z.object({ type: z.literal('auto').optional() }).strict(),
  z.object({ type: z.literal('tracepoint'), category: z.string().min(1), name: z.string().min(1) }).strict(),
  z.object({ type: z.literal('raw_tracepoint'), name: z.string().min(1) }).strict(),
  z.object({ type: z.literal('tp_btf') }).strict(),
  z
    .object({
      type: z.literal('uprobe'),
      binary: z.string().min(1),
      symbol: z.string().min(1).optional(),
      offset: z.number().int().min(0).optional(),
      pid: pid.optional(),
      retprobe: z.boolean().optional(),
    })
    .strict()
    .refine((o) => o.symbol !== undefined || o.offset !== undefined, { message: 'uprobe needs a symbol or an offset', path: ['symbol'] }),
  z.object({ type: z.literal('kprobe'), function: z.string().min(1), offset: z.number().int().min(0).optional(), retprobe: z.boolean().optional() }).strict(),
  z.object({ type: z.enum(['fentry', 'fexit', 'fmod_ret', 'lsm']) }).strict(),
  z
    .object({
      type: z.literal('perf_event'),
      event: z.object({ kind: z.enum(['software', 'hardware']), name: z.string().min(1) }).strict(),
      frequency: z.number().int().positive().optional(),
      period: z.number().int().positive().optional(),
      cpus: z.array(z.number().int().min(0)).min(1).optional(),
      pid: pid.optional(),
    })
    .strict()
    .refine((o) => !(o.frequency !== undefined && o.period !== undefined), { message: 'frequency and period are mutually exclusive', path: ['period'] })
    .refine((o) => (o.event.kind === 'software' ? o.event.name in SOFTWARE_EVENTS : o.event.name in HARDWARE_EVENTS), {
      message: `unknown event name; software: ${Object.keys(SOFTWARE_EVENTS).join(', ')}; hardware: ${Object.keys(HARDWARE_EVENTS).join(', ')}`,
      path: ['event', 'name'],
    }),
  z.object({ type: z.literal('iterator'), pid: pid.optional(), mapFd: z.number().int().min(0).optional() }).strict(),
  z.object({ type: z.literal('cgroup'), path: z.string().min(1), attachType: z.string().min(1).optional() }).strict(),
]);

/** Online CPUs from /sys/devices/system/cpu/online ("0-3,5"). */
export function onlineCpus(): number[] {
  const text = readFileSync('/sys/devices/system/cpu/online', 'utf8').trim();
  const cpus: number[] = [];
  for (const part of text.split(',')) {
    const [a, b] = part.split('-').map(Number);
    if (a === undefined || Number.isNaN(a)) continue;
    for (let c = a; c <= (b ?? a); c++) cpus.push(c);
  }
  return cpus;
}

/**
 * What `auto` would do for a section name, libbpf-style, or undefined when the section needs
 * explicit options (plain `uprobe`, `perf_event`, `cgroup/...`) or is unknown.
 */
export function autoAttachOptions(prog: Pick<ProgramInfo, 'section' | 'type' | 'attachType'>): AttachOptions | undefined {
  const s = prog.section;
  const [kind = '', ...rest] = s.split('/');
  const arg = rest.join('/');
  switch (kind) {
    case 'tracepoint':
    case 'tp': {
      const i = arg.indexOf('/');
      if (i <= 0) return undefined;
      return { type: 'tracepoint', category: arg.slice(0, i), name: arg.slice(i + 1) };
    }
    case 'raw_tracepoint':
    case 'raw_tp':
    case 'raw_tracepoint.w':
    case 'raw_tp.w':
      return arg ? { type: 'raw_tracepoint', name: arg } : undefined;
    case 'tp_btf':
      return { type: 'tp_btf' };
    case 'fentry':
    case 'fentry.s':
      return { type: 'fentry' };
    case 'fexit':
    case 'fexit.s':
      return { type: 'fexit' };
    case 'fmod_ret':
    case 'fmod_ret.s':
      return { type: 'fmod_ret' };
    case 'lsm':
    case 'lsm.s':
      return { type: 'lsm' };
    case 'iter':
    case 'iter.s':
      return { type: 'iterator' };
    case 'kprobe':
    case 'kretprobe': {
      if (!arg) return undefined;
      const m = /^([^+]+)(?:\+(\d+|0x[0-9a-fA-F]+))?$/.exec(arg);
      if (!m?.[1]) return undefined;
      return { type: 'kprobe', function: m[1], ...(m[2] ? { offset: Number(m[2]) } : {}), retprobe: kind === 'kretprobe' };
    }
    case 'uprobe':
    case 'uretprobe':
    case 'uprobe.s':
    case 'uretprobe.s': {
      // uprobe/<path>:<symbol>[+offset]  (libbpf's SEC syntax)
      const m = /^(.+):([^:+]+)(?:\+(\d+|0x[0-9a-fA-F]+))?$/.exec(arg);
      if (!m?.[1] || !m[2]) return undefined;
      return {
        type: 'uprobe',
        binary: m[1],
        symbol: m[2],
        ...(m[3] ? { offset: Number(m[3]) } : {}),
        retprobe: kind.startsWith('uretprobe'),
      };
    }
    default:
      return undefined;
  }
}

function native<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw fromNative(e, new Error());
  }
}

/**
 * Attaches `prog` (its fd stays the object's; the link holds its own references) and returns
 * the {@link Link} that keeps it attached: a {@link BpfIterLink} for iterators. Throws
 * {@link UnsupportedError} naming the feature when this kernel lacks the attach type (e.g.
 * `kprobe` on a kernel without kprobe events), PermissionError on missing capabilities.
 */
export function attachProgram(prog: ProgramInfo, opts: AttachOptions = { type: 'auto' }): Link {
  const o = validate(AttachOptionsSchema, opts, `attach options of program '${prog.name}'`) as AttachOptions;
  if (prog.fd < 0 || !prog.loaded) throw new UnsupportedError(`program '${prog.name}' is not loaded, it cannot be attached`, 'program');
  let spec: AttachOptions = o;
  if (o.type === undefined || o.type === 'auto') {
    const auto = autoAttachOptions(prog);
    if (!auto) {
      throw new UnsupportedError(
        `program '${prog.name}' (section '${prog.section}') cannot be auto-attached: pass attach options ` +
          `(uprobe needs a binary and symbol, perf_event an event, cgroup a path)`,
        'auto-attach',
      );
    }
    spec = auto;
  }
  const d = dp();
  const fd = prog.fd;
  switch (spec.type) {
    case 'tracepoint':
      return new BpfLink('tracepoint', prog.name, `${spec.category}/${spec.name}`, native(() => d.attachTracepoint(fd, spec.category, spec.name)));
    case 'raw_tracepoint':
      return new BpfLink('raw_tracepoint', prog.name, spec.name, native(() => d.attachRawTracepoint(fd, spec.name, 'raw_tracepoint')));
    case 'tp_btf':
    case 'fentry':
    case 'fexit':
    case 'fmod_ret':
    case 'lsm': {
      const t = spec.type;
      return new BpfLink(t, prog.name, prog.section, native(() => d.attachRawTracepoint(fd, '', t)));
    }
    case 'uprobe': {
      const binary = resolve(spec.binary);
      if (!existsSync(binary)) throw new UnsupportedError(`uprobe target ${binary} does not exist`, 'uprobe target');
      const base = spec.symbol ? native(() => d.resolveSymbol(binary, spec.symbol as string)) : 0;
      const offset = base + (spec.offset ?? 0);
      const target = `${binary}:${spec.symbol ?? ''}${spec.offset ? `+${spec.offset}` : ''}`;
      return new BpfLink(spec.retprobe ? 'uretprobe' : 'uprobe', prog.name, target, native(() => d.attachProbe(fd, 'uprobe', binary, offset, spec.pid ?? -1, spec.retprobe ?? false)));
    }
    case 'kprobe': {
      const s = spec;
      return new BpfLink(s.retprobe ? 'kretprobe' : 'kprobe', prog.name, s.function, native(() => d.attachProbe(fd, 'kprobe', s.function, s.offset ?? 0, -1, s.retprobe ?? false)));
    }
    case 'perf_event': {
      const s = spec;
      const type = s.event.kind === 'hardware' ? 0 : 1;
      const table = s.event.kind === 'hardware' ? HARDWARE_EVENTS : SOFTWARE_EVENTS;
      const config = table[s.event.name] as number;
      const useFreq = s.period === undefined;
      const value = s.period ?? s.frequency ?? 49;
      // perf_event_open wants either one CPU with any process, or any CPU (-1) with one process.
      const cpus = s.cpus ?? (s.pid !== undefined ? [-1] : onlineCpus());
      const fds = native(() => d.attachPerfEvent(fd, type, config, useFreq, value, cpus, s.pid ?? -1));
      return new BpfLink('perf_event', prog.name, `${s.event.kind}/${s.event.name}`, fds);
    }
    case 'iterator': {
      const s = spec;
      return new BpfIterLink('iterator', prog.name, prog.section, native(() => d.attachIter(fd, s.mapFd ?? -1, s.pid ?? 0)));
    }
    case 'cgroup': {
      const s = spec;
      const attachType = s.attachType ?? (prog.attachType || d.sectionTypes(prog.section).attachType);
      if (!attachType) throw new UnsupportedError(`program '${prog.name}': no cgroup attach type in section '${prog.section}'; pass attachType`, 'cgroup attach type');
      return new BpfLink('cgroup', prog.name, `${s.path} (${attachType})`, native(() => d.attachCgroup(fd, s.path, attachType)));
    }
    default:
      throw new UnsupportedError(`attach type '${(spec as { type: string }).type}' is not supported`, String((spec as { type: string }).type));
  }
}

/** Attach features of this kernel: whether uprobe/kprobe PMUs and tracefs events exist. */
export function attachFeatures(): { uprobe: boolean; kprobe: boolean; tracefs: boolean } {
  return native(() => dp().attachFeatures());
}

/**
 * Runs a program once (or `repeat` times) with BPF_PROG_TEST_RUN on a worker thread, e.g. a
 * `raw_tp` program that produces ring buffer records. `cpu` pins the run to one CPU.
 */
export async function testRunProgram(prog: Pick<ProgramInfo, 'fd' | 'name'>, opts: { repeat?: number; cpu?: number; ctx?: Uint8Array } = {}): Promise<{ retval: number; durationNs: number }> {
  const stack = new Error();
  try {
    return await dp().testRun(prog.fd, opts.repeat ?? 1, opts.cpu ?? -1, opts.ctx);
  } catch (e) {
    throw fromNative(e, stack);
  }
}
