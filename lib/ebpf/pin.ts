/**
 * bpffs pinning of whole objects: programs and maps under `<root>/<namespace>/<object>/`
 * (as `prog_<name>` and `map_<name>`; bpffs refuses '.', so `.rodata` is pinned as `map_-rodata`),
 * with a metadata record (object hash, program names, tags and types) pinned beside them as
 * `meta`. A later process that asks for the same object (same hash) reopens the pins with
 * `bpf_obj_get` and skips the verifier; pins from a different object are replaced.
 * @module
 */
import { mkdirSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { validate } from '../errors/validate.js';
import { loadAddon } from '../native/addon.js';
import { BpfError, fromNative, PermissionError } from './errors.js';
import { ObjectCore } from './object.js';

/** The bpffs magic number (statfs f_type). */
const BPF_FS_MAGIC = 0xcafe4a11;

/** Where an object's pins live. */
export const PinOptionsSchema = z
  .object({
    /** A bpffs mount. Default `/sys/fs/bpf`. */
    root: z.string().min(1).default('/sys/fs/bpf'),
    /** Your application's directory under the root (letters, digits, `_`, `-`, `.`). */
    namespace: z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/, 'letters, digits, _ - . only'),
  })
  .strict();
/** Options of pinning. */
export type PinOptions = z.input<typeof PinOptionsSchema>;

/** What is pinned beside an object's pins (as JSON in a one-entry array map called `meta`). */
export interface PinMeta {
  /** Format version of this record. */
  version: 1;
  /** The object hash ({@link BpfObject.hash}) the pins were made from. */
  hash: string;
  /** Object name. */
  name: string;
  /** When the pins were made (ISO time). */
  createdAt: string;
  /** Every program of the object; `pinned` is false for programs left out of the load. */
  programs: PinnedProgramMeta[];
  /** Every map of the object (all are pinned). */
  maps: PinnedMapMeta[];
}

/** A program as recorded in {@link PinMeta}: what a reopened pin is checked against. */
export interface PinnedProgramMeta {
  /** Program name. */
  name: string;
  /** ELF section name. */
  section: string;
  /** Program type (libbpf's name). */
  type: string;
  /** Expected attach type (libbpf's name) or ''. */
  attachType: string;
  /** Kernel program tag (hash of the instructions). */
  tag: string;
  /** Whether it was loaded and pinned. */
  pinned: boolean;
}

/** A map as recorded in {@link PinMeta}. */
export interface PinnedMapMeta {
  /** Map name as in the ELF (`.rodata` for internal maps). */
  name: string;
  /** Map type (libbpf's name). */
  type: string;
  /** Key size, bytes. */
  keySize: number;
  /** Value size, bytes. */
  valueSize: number;
  /** max_entries. */
  maxEntries: number;
}

const PinMetaSchema = z.object({
  version: z.literal(1),
  hash: z.string(),
  name: z.string(),
  createdAt: z.string(),
  programs: z.array(
    z.object({ name: z.string(), section: z.string(), type: z.string(), attachType: z.string(), tag: z.string(), pinned: z.boolean() }),
  ),
  maps: z.array(z.object({ name: z.string(), type: z.string(), keySize: z.number(), valueSize: z.number(), maxEntries: z.number() })),
});

/** A name as bpffs accepts it: bpffs refuses '.', which internal maps (`.rodata`) have. */
export function pinName(name: string): string {
  return name.replaceAll('.', '-');
}

/** Directory of an object's pins: `<root>/<namespace>/<object>` ('.' replaced by '-'). */
export function pinDirectory(pin: PinOptions, objectName: string): string {
  const p = validate(PinOptionsSchema, pin, 'pin options');
  return join(p.root, pinName(p.namespace), pinName(objectName));
}

/** Reads the metadata pinned in `dir`, or undefined when absent or unreadable. */
export function readPinMeta(dir: string): PinMeta | undefined {
  let raw: Buffer | undefined;
  try {
    raw = loadAddon().loader.readMeta(join(dir, 'meta'));
  } catch {
    return undefined;
  }
  if (!raw) return undefined;
  try {
    const r = PinMetaSchema.safeParse(JSON.parse(raw.toString('utf8')));
    return r.success ? (r.data as PinMeta) : undefined;
  } catch {
    return undefined;
  }
}

/** Removes pins: one object's directory, or a whole namespace. Missing paths are fine. */
export function unpin(pin: PinOptions, objectName?: string): void {
  const p = validate(PinOptionsSchema, pin, 'pin options');
  const dir = objectName ? pinDirectory(p, objectName) : join(p.root, pinName(p.namespace));
  rmSync(dir, { recursive: true, force: true });
}

function checkBpffs(root: string): void {
  let type: number;
  try {
    type = statfsSync(root).type;
  } catch (e) {
    throw new BpfError('ERR_BPF_SYSTEM', `pin root ${root} is not usable: ${(e as Error).message}`, { cause: e });
  }
  if (type !== BPF_FS_MAGIC) throw new BpfError('ERR_BPF_SYSTEM', `pin root ${root} is not a bpffs mount (mount -t bpf bpf ${root})`);
}

/**
 * Reopens the pins in `dir` when their metadata says they were made from `hash`; returns
 * undefined (after removing them) when they are stale or broken.
 * @internal
 */
export function reusePins(dir: string, hash: string, name: string, btf: () => Uint8Array | undefined): ObjectCore | undefined {
  const meta = readPinMeta(dir);
  if (!meta) {
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
  if (meta.hash !== hash) {
    rmSync(dir, { recursive: true, force: true }); // stale: made from another object or other options
    return undefined;
  }
  const t0 = performance.now();
  let native;
  try {
    native = loadAddon().loader.openPinned({
      name,
      programs: meta.programs.map((p) => ({
        name: p.name,
        section: p.section,
        type: p.type,
        attachType: p.attachType,
        ...(p.pinned ? { path: join(dir, `prog_${pinName(p.name)}`) } : {}),
      })),
      maps: meta.maps.map((m) => ({ name: m.name, path: join(dir, `map_${pinName(m.name)}`) })),
    });
  } catch (e) {
    const err = fromNative(e);
    if (err instanceof PermissionError) throw err;
    rmSync(dir, { recursive: true, force: true }); // a pin is missing or of the wrong kind
    return undefined;
  }
  // the tag is a hash of the program's instructions: a mismatch means someone else's pins
  const progs = native.programs();
  const bad = meta.programs.find((p) => p.pinned && progs.find((q) => q.name === p.name)?.tag !== p.tag);
  const maps = native.maps();
  const badMap = meta.maps.find((m) => {
    const q = maps.find((x) => x.name === m.name);
    return !q || q.type !== m.type || q.keySize !== m.keySize || q.valueSize !== m.valueSize;
  });
  if (bad || badMap) {
    native.close();
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
  return new ObjectCore(native, hash, name, performance.now() - t0, true, btf);
}

/**
 * Pins a freshly loaded object into `dir` (replacing whatever is there) and writes its
 * metadata last, so a reader never sees metadata for incomplete pins.
 * @internal
 */
export function pinCore(core: ObjectCore, root: string, dir: string): void {
  checkBpffs(root);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  try {
    core.native.pin(dir);
    const meta: PinMeta = {
      version: 1,
      hash: core.hash,
      name: core.name,
      createdAt: new Date().toISOString(),
      programs: core.programs.map((p) => ({
        name: p.name,
        section: p.section,
        type: p.type,
        attachType: p.attachType,
        tag: p.tag,
        pinned: p.loaded,
      })),
      maps: core.maps.map((m) => ({ name: m.name, type: m.type, keySize: m.keySize, valueSize: m.valueSize, maxEntries: m.maxEntries })),
    };
    loadAddon().loader.writeMeta(join(dir, 'meta'), Buffer.from(JSON.stringify(meta)));
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw fromNative(e);
  }
}
