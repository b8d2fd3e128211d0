/**
 * {@link probe}: what this host's kernel and this process can do with eBPF, found by libbpf's
 * probes and by real small loads and attachments (a type the verifier accepts may still be
 * refused at attach time).
 * @module
 */
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { loadAddon } from '../native/addon.js';
import { fromNative } from './errors.js';

/** Whether one feature works, and why (or why not). */
export interface FeatureSupport {
  /** Whether the feature works here. */
  supported: boolean;
  /** What the probe did or what failed, e.g. `program load failed: Operation not permitted (errno 1)`. */
  reason: string;
}

/** Attach types probed by {@link probe}. */
export type ProbedAttachType = 'tracepoint' | 'raw_tp' | 'tp_btf' | 'fentry' | 'fexit' | 'iterator' | 'kprobe' | 'uprobe' | 'perf_event';

/** Capabilities that matter for eBPF, from `/proc/self/status` CapEff. */
export interface BpfCapabilities {
  /** Every effective capability, by name (`CAP_BPF`, ...). */
  effective: string[];
  /** CAP_BPF is effective. */
  bpf: boolean;
  /** CAP_PERFMON is effective. */
  perfmon: boolean;
  /** CAP_SYS_ADMIN is effective. */
  sysAdmin: boolean;
  /** Enough to load tracing programs: (CAP_BPF and CAP_PERFMON) or CAP_SYS_ADMIN. */
  canLoadTracing: boolean;
}

/** What {@link probe} reports. */
export interface ProbeResult {
  /** Kernel release (`uname -r`). */
  kernel: string;
  /** libbpf version the addon was built against. */
  libbpf: string;
  /** Kernel BTF (needed for CO-RE and tp_btf) and what parsing it costs once. */
  btf: {
    /** `/sys/kernel/btf/vmlinux` is present and parses. */
    available: boolean;
    /** Types in the kernel BTF. */
    types: number;
    /** Milliseconds one parse took (libbpf 1.1 pays it again in each load that needs it). */
    parseMs: number;
  };
  /** Program types the kernel accepts (libbpf_probe_bpf_prog_type). */
  programTypes: Record<string, boolean>;
  /** Map types the kernel accepts (libbpf_probe_bpf_map_type). */
  mapTypes: Record<string, boolean>;
  /** Helpers available to tracepoint programs (libbpf_probe_bpf_helper). */
  helpers: Record<string, boolean>;
  /** Attach types, each tried with a real load and attachment. */
  attach: Record<ProbedAttachType, FeatureSupport>;
  /** BPF ring buffer maps. */
  ringbuf: boolean;
  /** Batch map operations (BPF_MAP_LOOKUP_BATCH). */
  batchMapOps: FeatureSupport;
  /** Capabilities of this process. */
  capabilities: BpfCapabilities;
  /** Relevant sysctls (undefined when unreadable). */
  sysctl: {
    /** `kernel.unprivileged_bpf_disabled` (0: allowed, 1/2: only with capabilities). */
    unprivilegedBpfDisabled?: number;
    /** `kernel.bpf_stats_enabled` (1: run time statistics are collected). */
    bpfStatsEnabled?: number;
    /** `net.core.bpf_jit_enable`. */
    jitEnable?: number;
  };
}

const CAP_NAMES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID',
  'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_IPC_LOCK',
  'CAP_IPC_OWNER', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT', 'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME', 'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE',
  'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
];

/** The effective capabilities of this process (from `/proc/self/status`). */
export function bpfCapabilities(): BpfCapabilities {
  let eff = 0n;
  try {
    const m = /^CapEff:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m?.[1]) eff = BigInt(`0x${m[1]}`);
  } catch {
    /* not Linux: none */
  }
  const has = (bit: number): boolean => ((eff >> BigInt(bit)) & 1n) === 1n;
  const effective = CAP_NAMES.filter((_, i) => has(i));
  const bpf = has(39);
  const perfmon = has(38);
  const sysAdmin = has(21);
  return { effective, bpf, perfmon, sysAdmin, canLoadTracing: sysAdmin || (bpf && perfmon) };
}

function sysctl(name: string): number | undefined {
  try {
    const n = Number(readFileSync(`/proc/sys/${name}`, 'utf8').trim());
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

let cached: ProbeResult | undefined;

/**
 * Probes the host once (later calls return the same result unless `refresh`). Takes tens of
 * milliseconds: it parses the kernel BTF and loads and attaches a few one-instruction programs.
 *
 * @example
 * ```ts
 * const p = probe();
 * if (!p.attach.fentry.supported) console.log('no fentry:', p.attach.fentry.reason);
 * ```
 */
export function probe(options: { refresh?: boolean } = {}): ProbeResult {
  if (cached && !options.refresh) return cached;
  const addon = loadAddon();
  let n;
  try {
    n = addon.loader.probe();
  } catch (e) {
    throw fromNative(e, new Error());
  }
  const sys: ProbeResult['sysctl'] = {};
  const u = sysctl('kernel/unprivileged_bpf_disabled');
  if (u !== undefined) sys.unprivilegedBpfDisabled = u;
  const s = sysctl('kernel/bpf_stats_enabled');
  if (s !== undefined) sys.bpfStatsEnabled = s;
  const j = sysctl('net/core/bpf_jit_enable');
  if (j !== undefined) sys.jitEnable = j;
  cached = {
    kernel: release(),
    libbpf: `${addon.versions.libbpfMajor}.${addon.versions.libbpfMinor}`,
    btf: { available: n.btf.vmlinux, types: n.btf.types, parseMs: n.btf.parseMs },
    programTypes: n.progTypes,
    mapTypes: n.mapTypes,
    helpers: n.helpers,
    attach: n.attach as Record<ProbedAttachType, FeatureSupport>,
    ringbuf: n.mapTypes.ringbuf === true,
    batchMapOps: n.batchOps,
    capabilities: bpfCapabilities(),
    sysctl: sys,
  };
  return cached;
}
