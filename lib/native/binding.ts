/**
 * Types of everything `smoothtask.node` exports. No `any` outside this folder: the rest of
 * lib/ sees the addon only through these interfaces. Each native part owns one file here
 * (binding-<part>.ts) mirroring its native/<part>.cc; this file composes them.
 * @internal
 */
import type { DatapathBinding } from './binding-datapath.js';
import type { NvmlBinding } from './binding-nvml.js';
import type { LoaderBinding } from './binding-loader.js';
import type { PerfbufBinding } from './binding-perfbuf.js';

/** Exports of native/version.cc and native/addon.cc. */
export interface CoreBinding {
  /** Names of the native parts that registered themselves. */
  readonly parts: string[];
  /** N-API version the addon was built for. */
  readonly napiVersion: number;
  /** libbpf version the addon was built against. */
  readonly versions: { libbpfMajor: number; libbpfMinor: number };
}

/** The whole addon. Parts add their interfaces to this intersection. */
export type NativeBinding = CoreBinding & DatapathBinding & LoaderBinding & NvmlBinding & PerfbufBinding;
