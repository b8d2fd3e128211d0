/**
 * Child process of the loader tests (run with `node --import tsx`): loads an object the way
 * the test asks and prints one JSON line with what happened.
 *   loader-child.ts pin <object> <namespace>   load with pins, report fromPins and program ids
 *   loader-child.ts load <object>              plain load, report the error if any
 *   loader-child.ts gc <object>                load, drop the handle without close(), collect
 *                                              garbage (needs --expose-gc), report whether the
 *                                              kernel program went away
 */
import { execFileSync } from 'node:child_process';
import { loadObject } from '../../lib/ebpf/load.js';

const [mode, path, namespace] = process.argv.slice(2);
const out: Record<string, unknown> = { mode };
const exists = (id: number): boolean => {
  try {
    execFileSync('bpftool', ['prog', 'show', 'id', String(id)], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
};
if (mode === 'gc') {
  let id = 0;
  await (async () => {
    const obj = await loadObject(path as string, { cache: false });
    id = obj.program('count_getpid').id;
  })();
  out.before = exists(id);
  for (let i = 0; i < 20 && exists(id); i++) {
    (globalThis as { gc?: () => void }).gc?.();
    await new Promise((r) => setTimeout(r, 50));
  }
  out.after = exists(id);
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exit(0);
}
try {
  const t0 = performance.now();
  const obj = await loadObject(path as string, mode === 'pin' ? { pin: { namespace: namespace as string } } : { cache: false });
  out.ms = performance.now() - t0;
  out.fromPins = obj.fromPins;
  out.hash = obj.hash;
  out.loadTimeMs = obj.loadTimeMs;
  out.programs = Object.fromEntries([...obj.programs.values()].map((p) => [p.name, { id: p.id, tag: p.tag, loaded: p.loaded }]));
  out.maps = Object.fromEntries([...obj.maps.values()].map((m) => [m.name, m.id]));
  obj.close();
} catch (e) {
  const err = e as Error & Record<string, unknown>;
  out.error = { name: err.name, code: err.code, message: err.message, capability: err.capability, feature: err.feature };
}
process.stdout.write(`${JSON.stringify(out)}\n`);
