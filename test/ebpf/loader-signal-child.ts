/**
 * Child of loader-signal.test.ts (run with `node --import tsx`, usually under an LD_PRELOAD
 * that installed a host handler on real-time signals): loads slow_verify with a short timeout
 * and prints one JSON line with the error class and the loader's signal.
 */
import { configureLoader, loadObject } from '../../lib/ebpf/load.js';
import { testObject } from './helpers-loader.js';

const out: Record<string, unknown> = {};
try {
  // TIMED_MS: with every signal taken the load fails as soon as its thread looks for one, and a
  // long deadline keeps the ELF pre-check (whose time counts against it) out of that answer on
  // a loaded host.
  (await loadObject(testObject('slow_verify'), { timeoutMs: Number(process.env.TIMED_MS ?? 40), cache: false })).close();
  out.timed = 'loaded';
} catch (e) {
  const err = e as Error & { code?: string };
  out.timed = { name: err.name, code: err.code, message: err.message };
}
try {
  (await loadObject(testObject('slow_verify'), { cache: false })).close();
  out.untimed = 'loaded';
} catch (e) {
  const err = e as Error & { code?: string };
  out.untimed = { name: err.name, code: err.code, message: err.message };
}
out.signal = configureLoader().signal;
process.stdout.write(`${JSON.stringify(out)}\n`);
