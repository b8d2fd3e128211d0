/**
 * The eBPF loader at work: probes the host, loads every bundled object in parallel (each
 * settles on its own), loads them again from the program cache, pins one object to bpffs and
 * reopens it as a restarted process would, then attaches the counter and prints what it
 * counts until SMOOTHTASK_EXAMPLE_SECONDS (default 5) have passed.
 *
 *   node --import tsx examples/ebpf-loader.ts        (as root, after `npm run build`)
 */
import { spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  bundledObject,
  bundledObjects,
  loadObject,
  loadObjects,
  PermissionError,
  probe,
  programCache,
  u32,
  u64,
  unpin,
} from 'smoothtask/ebpf';

const seconds = Number(process.env.SMOOTHTASK_EXAMPLE_SECONDS ?? 5);
const deadline = performance.now() + seconds * 1000;
const namespace = `smoothtask-example-${process.pid}`;

const host = probe();
const attach = Object.entries(host.attach)
  .map(([k, v]) => `${k}${v.supported ? '' : ' (no)'}`)
  .join(', ');
console.log(`kernel ${host.kernel}, libbpf ${host.libbpf}, BTF ${host.btf.available ? `${host.btf.types} types` : 'missing'}`);
console.log(`attach types: ${attach}`);
if (!host.capabilities.canLoadTracing) {
  console.log('this process may not load tracing programs (needs CAP_BPF + CAP_PERFMON, or root): nothing more to show');
  process.exit(0);
}

// 1. every bundled object at once, on the loader's own threads
const paths = bundledObjects();
let t0 = performance.now();
const results = await loadObjects(paths);
console.log(`\nloaded ${paths.length} objects in parallel in ${(performance.now() - t0).toFixed(0)} ms:`);
results.forEach((r, i) => {
  const name = paths[i]?.split('/').pop();
  if (r.status === 'fulfilled') {
    console.log(`  ${name?.padEnd(18)} ${r.value.loadTimeMs.toFixed(1).padStart(7)} ms  ${r.value.programs.size} programs, ${r.value.maps.size} maps`);
    r.value.close();
  } else {
    console.log(`  ${name?.padEnd(18)} failed: ${(r.reason as Error).name}: ${(r.reason as Error).message.split('\n')[0]}`);
  }
});

// 2. the same again: cache hits, no verifier
t0 = performance.now();
for (const r of await loadObjects(paths)) if (r.status === 'fulfilled') r.value.close();
const s = programCache.stats();
console.log(`\nagain from the cache in ${(performance.now() - t0).toFixed(1)} ms: hits ${s.hits}, misses ${s.misses}, ` +
  `entries ${s.entries}, ${(s.bytes / 1024).toFixed(0)} KiB, load time saved ${s.loadTimeSavedMs.toFixed(0)} ms`);

// 3. pins: the first load pins, a "restarted process" (no cache) reopens the pins
try {
  const first = await loadObject(bundledObject('counter'), { cache: false, pin: { namespace } });
  const id = first.program('count_getpid').id;
  first.close();
  t0 = performance.now();
  const again = await loadObject(bundledObject('counter'), { cache: false, pin: { namespace } });
  console.log(`\npinned under /sys/fs/bpf/${namespace}/counter; reopened fromPins=${again.fromPins} ` +
    `(same program id: ${again.program('count_getpid').id === id}) in ${(performance.now() - t0).toFixed(2)} ms`);

  // 4. attach and watch getpid() calls per process
  const links = again.attach();
  using counts = again.map('counts', { key: u32, value: u64 });
  while (performance.now() < deadline) {
    spawnSync('sh', ['-c', 'echo $$ > /dev/null']); // a little activity of our own
    await sleep(Math.min(1000, Math.max(0, deadline - performance.now())));
    const top = [...counts.readAll()].sort((a, b) => Number(b[1] - a[1])).slice(0, 3);
    console.log(`getpid() calls, top processes: ${top.map(([pid, n]) => `${pid}=${n}`).join(' ') || '(none yet)'}`);
  }
  for (const l of links) l.close();
  again.close();
} catch (e) {
  if (e instanceof PermissionError) console.log(`pinning/attaching not permitted here: ${e.message}`);
  else throw e;
} finally {
  unpin({ namespace });
  programCache.clear();
}
