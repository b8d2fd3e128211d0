/**
 * Generates TypeScript types and codecs for the structs shared between BPF and user space
 * (`bpf/*.h`) from the BTF of the compiled objects, as cilium/ebpf's bpf2go does for Go: a
 * struct is described once, in C, and the layout comes from the compiler.
 *
 *   node --import tsx scripts/gen-types.ts [--dir <bpf object dir>] [--check]
 *
 * Writes lib/ebpf/generated/<header>.ts (one per header) and lib/ebpf/generated/index.ts.
 * The output is committed. `--check` writes nothing and exits 1 when regenerating would change
 * a file (CI: run after building the objects).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Btf, btfFromElf, BtfKind, type BtfType, parseBtf } from '../lib/ebpf/btf.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const check = args.includes('--check');
const dirArg = args.indexOf('--dir');
const objDir = dirArg >= 0 ? (args[dirArg + 1] as string) : (process.env.SMOOTHTASK_BPF_DIR ?? join(root, 'build-native', 'bpf'));
const headerDir = join(root, 'bpf');
const outDir = join(root, 'lib', 'ebpf', 'generated');

const TEXTUAL = /^(comm|name|.*_name|path|filename|task|fname)$/;
/** Member names that are padding (optional in the number variant). */
const PADDING = /^(_*pad\d*|_+\w*|reserved\d*)$/;

interface Gen {
  /** Codec expression. */
  codec: string;
  /** TS type. */
  ts: string;
  imports: Set<string>;
}

function camel(cName: string): string {
  return cName
    .split('_')
    .filter(Boolean)
    .map((p) => p[0]?.toUpperCase() + p.slice(1))
    .join('');
}

/** Struct names declared in a header, in order of appearance. */
function structsIn(header: string): string[] {
  const text = readFileSync(header, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  return [...text.matchAll(/^\s*struct\s+(\w+)\s*\{/gm)].map((m) => m[1] as string);
}

function load(): { name: string; btf: Btf }[] {
  if (!existsSync(objDir)) throw new Error(`no BPF objects in ${objDir}: build them first (npm run build:native) or pass --dir`);
  return readdirSync(objDir)
    .filter((f) => f.endsWith('.bpf.o'))
    .sort()
    .flatMap((f) => {
      const raw = btfFromElf(readFileSync(join(objDir, f)));
      return raw ? [{ name: f, btf: parseBtf(raw) }] : [];
    });
}

function generate(): Map<string, string> {
  const objects = load();
  const headers = readdirSync(headerDir)
    .filter((f) => f.endsWith('.h') && !f.endsWith('.bpf.h'))
    .sort();
  const owner = new Map<string, string>(); // struct -> header
  for (const h of headers) for (const s of structsIn(join(headerDir, h))) owner.set(s, h);

  const files = new Map<string, string>();
  const indexLines: string[] = [];
  const missing: string[] = [];
  for (const h of headers) {
    const structs = structsIn(join(headerDir, h));
    if (structs.length === 0) continue;
    const mod = basename(h, '.h');
    const imports = new Set<string>(['field', 'struct']);
    const crossImports = new Map<string, Set<string>>();
    const blocks: string[] = [];
    const layouts: string[] = [];
    for (const s of structs) {
      let found: { t: BtfType; btf: Btf; obj: string } | undefined;
      for (const o of objects) {
        const t = o.btf.find(s, BtfKind.STRUCT);
        if (!t) continue;
        if (!found) found = { t, btf: o.btf, obj: o.name };
        else if (t.size !== found.t.size) throw new Error(`struct ${s}: size ${t.size} in ${o.name} but ${found.t.size} in ${found.obj}`);
      }
      if (!found) {
        missing.push(`${s} (${h})`);
        continue;
      }
      const { t, btf } = found;
      const gen = (id: number, fieldName: string, num = false): Gen => {
        const r = btf.resolve(id);
        if (!r) throw new Error(`struct ${s}: BTF type ${id} missing`);
        switch (r.kind) {
          case BtfKind.INT: {
            const signed = ((r.intEncoding ?? 0) & 1) === 1;
            if (((r.intEncoding ?? 0) & 4) === 4) return { codec: 'bool', ts: 'boolean', imports: new Set(['bool']) };
            const c = `${signed ? 'i' : 'u'}${(r.size ?? 0) * 8}${num && r.size === 8 ? 'n' : ''}`;
            return { codec: c, ts: r.size === 8 && !num ? 'bigint' : 'number', imports: new Set([c]) };
          }
          case BtfKind.ENUM:
            return { codec: r.size === 4 ? 'i32' : `u${(r.size ?? 4) * 8}`, ts: 'number', imports: new Set([r.size === 4 ? 'i32' : `u${(r.size ?? 4) * 8}`]) };
          case BtfKind.PTR:
            return { codec: 'u64', ts: 'bigint', imports: new Set(['u64']) };
          case BtfKind.FLOAT:
            return { codec: r.size === 4 ? 'f32' : 'f64', ts: 'number', imports: new Set([r.size === 4 ? 'f32' : 'f64']) };
          case BtfKind.ARRAY: {
            const e = btf.resolve(r.elemType ?? 0);
            const n = r.nelems ?? 0;
            if (e?.kind === BtfKind.INT && e.size === 1) {
              const isChar = ((e.intEncoding ?? 0) & 2) === 2 || e.name === 'char';
              if (isChar || TEXTUAL.test(fieldName)) return { codec: `cstring(${n})`, ts: 'string', imports: new Set(['cstring']) };
              return { codec: `bytes(${n})`, ts: 'Buffer', imports: new Set(['bytes']) };
            }
            const inner = gen(r.elemType ?? 0, fieldName, num);
            const stride = btf.sizeOf(r.elemType ?? 0);
            return { codec: `array(${inner.codec}, ${n}, ${stride})`, ts: `${inner.ts.includes(' ') ? `(${inner.ts})` : inner.ts}[]`, imports: new Set([...inner.imports, 'array']) };
          }
          case BtfKind.STRUCT: {
            const o = owner.get(r.name);
            if (!r.name || !o) throw new Error(`struct ${s}: field ${fieldName} has a struct type not declared in bpf/*.h`);
            const name = camel(r.name) + (num ? 'N' : '');
            if (o !== h) {
              const m = basename(o, '.h');
              if (!crossImports.has(m)) crossImports.set(m, new Set());
              crossImports.get(m)?.add(name);
            }
            return { codec: name, ts: name, imports: new Set() };
          }
          default:
            throw new Error(`struct ${s}: field ${fieldName} has an unsupported BTF kind ${r.kind} (use fixed-size __u*/__s* fields)`);
        }
      };
      const tsName = camel(s);
      const fields: string[] = [];
      const codecs: string[] = [];
      const offsets: string[] = [];
      const fieldsN: string[] = [];
      const codecsN: string[] = [];
      for (const m of t.members ?? []) {
        if (!m.name) throw new Error(`struct ${s}: anonymous members are not supported in shared headers`);
        if (m.bitSize || m.bitOffset % 8) throw new Error(`struct ${s}: bitfield ${m.name} is not supported in shared headers`);
        const g = gen(m.type, m.name);
        const gn = gen(m.type, m.name, true);
        for (const i of [...g.imports, ...gn.imports]) imports.add(i);
        const off = m.bitOffset / 8;
        fields.push(`  ${m.name}: ${g.ts};`);
        codecs.push(`    ${m.name}: field(${g.codec}, ${off}),`);
        // Padding members are optional in the number variant, so encoders need not name them.
        fieldsN.push(`  ${m.name}${PADDING.test(m.name) ? '?' : ''}: ${gn.ts};`);
        codecsN.push(`    ${m.name}: field(${gn.codec}, ${off}),`);
        offsets.push(`${m.name}: ${off}`);
      }
      blocks.push(
        `/** \`struct ${s}\` (bpf/${h}), ${t.size} bytes. */\n` +
          `export interface ${tsName} {\n${fields.join('\n')}\n}\n\n` +
          `/** Codec of {@link ${tsName}}: \`struct ${s}\`, layout from BTF. */\n` +
          `export const ${tsName}: Codec<${tsName}> = struct(\n  {\n${codecs.join('\n')}\n  },\n  ${t.size},\n);\n\n` +
          `/** \`struct ${s}\` with 64-bit integers as \`number\` (exact below 2^53: counters, ns times, ids). */\n` +
          `export interface ${tsName}N {\n${fieldsN.join('\n')}\n}\n\n` +
          `/** Codec of {@link ${tsName}N}: \`struct ${s}\`, layout from BTF, 64-bit integers as \`number\`. */\n` +
          `export const ${tsName}N: Codec<${tsName}N> = struct(\n  {\n${codecsN.join('\n')}\n  },\n  ${t.size},\n);\n`,
      );
      layouts.push(`  ${s}: { size: ${t.size}, fields: { ${offsets.join(', ')} } },`);
    }
    if (blocks.length === 0) continue;
    const codecImports = [...imports].sort();
    const cross = [...crossImports.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([m, names]) => `import { ${[...names].sort().join(', ')} } from './${m}.js';\n`)
      .join('');
    const text =
      `// Generated by scripts/gen-types.ts from the BTF of the compiled BPF objects: do not edit.\n` +
      `// Source of truth: bpf/${h}. Regenerate: node --import tsx scripts/gen-types.ts\n` +
      `import { ${codecImports.join(', ')} } from '../codec.js';\n` +
      `import type { Codec } from '../types.js';\n` +
      cross +
      `\n${blocks.join('\n')}\n` +
      `/** Sizes and field byte offsets of the structs of bpf/${h}, as BTF gave them. */\n` +
      `export const ${camel(mod)}Layouts: Record<string, { size: number; fields: Record<string, number> }> = {\n${layouts.join('\n')}\n};\n`;
    files.set(`${mod}.ts`, text);
    indexLines.push(`export * from './${mod}.js';`);
  }
  files.set(
    'index.ts',
    `// Generated by scripts/gen-types.ts: do not edit.\n/**\n * Types and codecs generated from the BTF of the bundled BPF objects (structs of bpf/*.h).\n * @module\n */\n${indexLines.join('\n')}\n`,
  );
  if (missing.length) process.stderr.write(`gen-types: not in any object's BTF (unused by BPF code?), skipped: ${missing.join(', ')}\n`);
  return files;
}

const files = generate();
const stale: string[] = [];
for (const [name, text] of files) {
  const path = join(outDir, name);
  const old = existsSync(path) ? readFileSync(path, 'utf8') : undefined;
  if (old === text) continue;
  stale.push(name);
  if (!check) {
    mkdirSync(outDir, { recursive: true });
    writeFileSync(path, text);
  }
}
const extra = existsSync(outDir) ? readdirSync(outDir).filter((f) => f.endsWith('.ts') && !files.has(f)) : [];
if (check) {
  if (stale.length || extra.length) {
    process.stderr.write(`gen-types --check: out of date: ${[...stale, ...extra.map((e) => `${e} (no longer generated)`)].join(', ')}\nRun: node --import tsx scripts/gen-types.ts\n`);
    process.exit(1);
  }
  process.stdout.write(`gen-types --check: ${files.size} files up to date\n`);
} else {
  process.stdout.write(`gen-types: ${stale.length ? `wrote ${stale.join(', ')}` : 'nothing changed'} (${files.size} files in lib/ebpf/generated)\n`);
  if (extra.length) process.stdout.write(`gen-types: stale files not generated any more: ${extra.join(', ')}\n`);
}
