/**
 * Types of native/loader.cc, native/object.cc, native/pin.cc and native/probe.cc
 * (`exports.loader`).
 * @internal
 */
import type { MapInfo, ProgramInfo } from '../ebpf/types.js';

/** A loaded object as the addon hands it over (native/object.cc). */
export interface NativeObjectHandle {
  programs(): ProgramInfo[];
  maps(): MapInfo[];
  /** Raw BTF of the object, if it has any. */
  btf(): Buffer | undefined;
  /** Frees every kernel resource; idempotent. */
  close(): void;
  readonly closed: boolean;
  meta(): { name: string; openMs: number; loadMs: number; memlockBytes: number; log: string };
  /** Pins loaded programs as `<dir>/prog.<name>` and maps as `<dir>/map.<name>`. */
  pin(dir: string): { programs: { name: string; path: string }[]; maps: { name: string; path: string }[] };
}

/** Options passed to the native load (validated in lib/ebpf/load.ts). */
export interface NativeLoadOptions {
  name: string;
  programs?: string[];
  logLevel?: number;
  timeoutMs?: number;
  /** Time already spent on this load before the native call (its pre-check): counts against `timeoutMs`. */
  spentMs?: number;
  btfCustomPath?: string;
  /** The bytes may be opened in this process (opened safely before, or pre-checked): skip the isolated pre-check. */
  trusted?: boolean;
  mapSizes?: Record<string, number>;
  constants?: Record<string, number | bigint | boolean | Uint8Array>;
}

/** A program to reopen from a pin. */
export interface NativePinnedProgram {
  name: string;
  path?: string;
  section: string;
  type: string;
  attachType: string;
}

/** Result of a host probe (native/probe.cc). */
export interface NativeProbe {
  progTypes: Record<string, boolean>;
  mapTypes: Record<string, boolean>;
  helpers: Record<string, boolean>;
  attach: Record<string, { supported: boolean; reason: string }>;
  batchOps: { supported: boolean; reason: string };
  btf: { vmlinux: boolean; types: number; parseMs: number };
}

/** `exports.loader`. */
export interface LoaderNative {
  load(elf: Uint8Array, options: NativeLoadOptions): Promise<NativeObjectHandle>;
  /**
   * The isolated pre-check alone (native/load_precheck.h): resolves when the bytes may be opened
   * in this process, rejects as a load would when parsing them crashed libbpf or took too long.
   */
  precheck(elf: Uint8Array, options: { name: string; timeoutMs?: number }): Promise<void>;
  configure(options?: { threads?: number }): { threads: number; running: number; queued: number; signal: number };
  progStats(fd: number): { runTimeNs: number; runCount: number; verifiedInsns: number };
  enableStats(): number;
  closeFd(fd: number): void;
  kernelBtfCost(): { ms: number; types: number };
  openPinned(spec: { name: string; programs: NativePinnedProgram[]; maps: { name: string; path: string }[]; btf?: Uint8Array }): NativeObjectHandle;
  inspect(elf: Uint8Array, name: string): { programs: ProgramInfo[]; maps: MapInfo[]; btf?: Buffer };
  probe(): NativeProbe;
  /** Pins a one-entry array map holding `bytes` (the pin metadata) at `path`. */
  writeMeta(path: string, bytes: Uint8Array): void;
  /** Bytes written by writeMeta, or undefined when nothing (or something else) is pinned there. */
  readMeta(path: string): Buffer | undefined;
}

/** The loader's part of the addon. */
export interface LoaderBinding {
  readonly loader: LoaderNative;
}
