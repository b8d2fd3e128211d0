// Scenario of test/ebpf/worker-terminate.test.ts, run in its own process so that an abort in
// native code shows up as a signal of this process rather than killing the test runner.
//
//   node worker-terminate-child.cjs <addon> <bpfDir> <workers> <rounds> <seed> [main]
//
// With `main`, the main thread loads the addon too (it then stays loaded); without it, the
// addon is loaded and unloaded by worker environments only.
//
// Each round starts <workers> worker threads at once. Every worker requires the addon itself
// (module init runs in the worker), then keeps the addon busy: loads on the loader pool
// (thread-safe functions), synchronous map operations that build JS objects and throw typed
// errors, object handles, inspect(). The main thread terminates each worker at a random
// moment: some before the addon finished initialising, some in the middle of native calls.
// Prints one JSON line with counts; exits 0 when every worker ended.
'use strict';
const { Worker } = require('node:worker_threads');
const { join } = require('node:path');

const [addon, bpfDir, workersArg, roundsArg, seedArg, mainArg] = process.argv.slice(2);
if (mainArg === 'main') require(addon);
const workers = Number(workersArg ?? 50);
const rounds = Number(roundsArg ?? 1);
let seed = Number(seedArg ?? 1) >>> 0;

// mulberry32: a failing run can be replayed from its seed
function rand() {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

const workerCode = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { addon, slow, counter, mode } = workerData;
parentPort.postMessage('init');
const a = require(addon);
parentPort.postMessage('ready');
const slowElf = fs.readFileSync(slow);
const counterElf = fs.readFileSync(counter);
const swallow = () => {};
// loads running on the loader pool while the worker is terminated
for (let i = 0; i < 2; i++) a.loader.load(i ? counterElf : slowElf, { name: 'w' + i, trusted: true }).then((o) => o.close(), swallow);
if (mode === 'async') {
  // keep loading until terminated
  const again = () => a.loader.load(counterElf, { name: 'again', trusted: true }).then((o) => { o.maps(); o.programs(); o.close(); again(); }, swallow);
  again();
} else {
  // synchronous native calls in a tight loop: terminate() lands inside one of them
  const fd = a.dp.mapCreate(1 /* hash */, 'wt', 4, 8, 64, 0);
  const key = Buffer.alloc(4), val = Buffer.alloc(8);
  for (let i = 0; ; i++) {
    key.writeUInt32LE(i % 64);
    a.dp.mapUpdate(fd, key, val, 0);
    a.dp.mapLookup(fd, key, val, 0);
    a.dp.mapInfo(fd);
    a.dp.mapReadAll(fd, 4, 8, 64, 'auto');
    try { a.dp.mapUpdate(fd, key, val, 1 /* noexist: throws a typed error */); } catch {}
    try { a.loader.inspect(new Uint8Array(16), 'bad'); } catch {}
    a.loader.inspect(counterElf, 'counter');
  }
}
`;

async function round(r) {
  const counts = { total: 0, beforeInit: 0, duringInit: 0, afterInit: 0, exitCodes: {} };
  const exits = [];
  for (let i = 0; i < workers; i++) {
    const mode = i % 2 ? 'async' : 'sync';
    const w = new Worker(workerCode, {
      eval: true,
      workerData: { addon, mode, slow: join(bpfDir, 'test', 'slow_verify.bpf.o'), counter: join(bpfDir, 'counter.bpf.o') },
    });
    let state = 'beforeInit';
    // terminate at a random moment: a third counted from creation (the worker may not even run
    // yet), a third from the start of its require() of the addon (module init), a third from
    // when the addon is loaded (inside native calls)
    const anchor = ['beforeInit', 'duringInit', 'afterInit'][i % 3];
    const delay = Math.floor(rand() * (anchor === 'duringInit' ? 8 : 40));
    let timer;
    let when = 'beforeInit';
    const arm = () => {
      timer = setTimeout(() => {
        when = state;
        w.terminate();
      }, delay);
    };
    if (anchor === 'beforeInit') arm();
    w.on('message', (m) => {
      state = m === 'init' ? 'duringInit' : 'afterInit';
      if (state === anchor) arm();
    });
    w.on('error', () => {}); // a worker killed mid-require may report an error: it still must not take the process
    exits.push(
      new Promise((resolve) => {
        w.on('exit', (code) => {
          clearTimeout(timer);
          counts.total++;
          counts[when]++;
          counts.exitCodes[code] = (counts.exitCodes[code] ?? 0) + 1;
          resolve();
        });
      }),
    );
  }
  await Promise.all(exits);
  return counts;
}

(async () => {
  const sum = { rounds: 0, total: 0, beforeInit: 0, duringInit: 0, afterInit: 0, exitCodes: {} };
  const t0 = Date.now();
  for (let r = 0; r < rounds; r++) {
    const c = await round(r);
    sum.rounds++;
    for (const k of ['total', 'beforeInit', 'duringInit', 'afterInit']) sum[k] += c[k];
    for (const [k, v] of Object.entries(c.exitCodes)) sum.exitCodes[k] = (sum.exitCodes[k] ?? 0) + v;
  }
  sum.ms = Date.now() - t0;
  // loads of terminated workers finish on the pool after their environment is gone
  await new Promise((r) => setTimeout(r, 500));
  process.stdout.write(JSON.stringify(sum) + '\n');
})();
