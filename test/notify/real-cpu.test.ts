import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { AlertEngine, callbackNotifier, type AlertTransition, type Notification } from 'smoothtask/notify';

// A tiny procfs reader with the metrics readers' snapshot shape ({ family, backend, timestamp,
// processes: [{ pid, comm, cpuTimeNs }] }). lib/metrics' procfs CPU reader was not committed
// when this test was written; it can replace this one without changing the rule.
const TICK_NS = 1e9 / 100; // USER_HZ is 100 on Linux x86
function procCpuReader(pids: () => number[]) {
  return {
    async read() {
      const processes = [];
      for (const pid of pids()) {
        try {
          const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
          const close = stat.lastIndexOf(')');
          const comm = stat.slice(stat.indexOf('(') + 1, close);
          const f = stat.slice(close + 2).split(' ');
          const utime = Number(f[11]);
          const stime = Number(f[12]);
          processes.push({ pid, comm, cpuTimeNs: (utime + stime) * TICK_NS });
        } catch {
          /* exited */
        }
      }
      return { family: 'cpu', backend: 'procfs' as const, timestamp: Date.now(), processes };
    },
  };
}

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

async function until(pred: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (pred()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return pred();
}

describe('CPU rule driven by a real reader', () => {
  it('a CPU burner child drives the rule to firing, and pausing it resolves the alert', async () => {
    const burner = spawn('sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' });
    children.push(burner);
    const pid = burner.pid!;
    const notes: Notification[] = [];
    const transitions: AlertTransition[] = [];
    const engine = new AlertEngine({
      evaluationInterval: '200ms',
      route: { groupInterval: 0 },
      rules: [
        {
          name: 'ProcessBurnsCpu',
          // more than 0.1 of a core over the last second, for a second: low because 2 cores are shared
          // with other work on this machine (an idle sh uses 0; a SIGSTOPped one exactly 0)
          expr: { rate: { metric: 'cpu.processes.cpuTimeNs', window: '1s' }, op: '>', value: 0.1e9, resolve: { value: 0.03e9 } },
          for: '1s',
          annotations: { summary: '{{ $labels.comm }} ({{ $labels.pid }}) uses {{ $value }} ns/s' },
        },
      ],
      notifiers: [callbackNotifier((n) => void notes.push(n))],
    });
    engine.on('alert', (t: AlertTransition) => transitions.push(t));
    engine.addSource('cpu', procCpuReader(() => [pid]));
    engine.start();
    try {
      expect(await until(() => engine.alerts().some((a) => a.state === 'firing'), 20_000)).toBe(true);
      const a = engine.alerts()[0]!;
      expect(a.labels).toMatchObject({ alertname: 'ProcessBurnsCpu', pid: String(pid), comm: 'sh' });
      expect(a.value).toBeGreaterThan(0.1e9);
      expect(a.firedAt! - a.activeAt).toBeGreaterThanOrEqual(1000);
      burner.kill('SIGSTOP'); // the process stays, its CPU rate falls to 0
      expect(await until(() => engine.alerts().some((x) => x.state === 'resolved'), 20_000)).toBe(true);
      await engine.flush();
      expect(transitions.map((t) => `${t.from}->${t.to}`)).toEqual(['inactive->pending', 'pending->firing', 'firing->resolved']);
      expect(notes.map((n) => n.status)).toEqual(['firing', 'resolved']);
      expect(notes[0]!.alerts[0]!.annotations.summary).toMatch(new RegExp(`^sh \\(${pid}\\) uses \\d`));
    } finally {
      await engine.close();
      burner.kill('SIGKILL');
    }
  });
});
