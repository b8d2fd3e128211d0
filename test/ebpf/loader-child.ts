/**
 * Child process of the loader tests (run with `node --import tsx`): loads an object the way
 * the test asks and prints one JSON line with what happened.
 *   loader-child.ts pin <object> <namespace>   load with pins, report fromPins and program ids
 *   loader-child.ts load <object>              plain load, report the error if any
 */
import { loadObject } from '../../lib/ebpf/load.js';

const [mode, path, namespace] = process.argv.slice(2);
const out: Record<string, unknown> = { mode };
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
