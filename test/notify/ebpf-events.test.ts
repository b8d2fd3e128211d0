// eBPF events trigger a rule directly: the metrics process reader (proc.bpf.c, ring buffer)
// streams exit events into an event rule; a process killed by SIGKILL fires "KilledBySignal",
// one that exits normally does not. Needs the addon and BPF objects (build-native/ or
// SMOOTHTASK_ADDON / SMOOTHTASK_BPF_DIR) and root; skipped with a message otherwise.
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openProcessReader } from '../../lib/metrics/builtin.js';
import { AlertEngine, callbackNotifier, type Notification } from 'smoothtask/notify';

const dir = mkdtempSync(join(tmpdir(), 'st-notify-ebpf-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const COMM = 'st-killprobe';
const reader = await openProcessReader({ events: true, filter: { comm: COMM } }).catch((e: unknown) => {
  console.warn(`eBPF process reader unavailable, skipping: ${(e as Error).message}`);
  return undefined;
});
afterAll(() => reader?.close());

describe.skipIf(!reader)('event rules fed by a real eBPF reader', () => {
  it('a process killed by a signal fires KilledBySignal; a clean exit does not', async () => {
    const bin = join(dir, COMM);
    copyFileSync('/bin/sleep', bin);
    const notes: Notification[] = [];
    const engine = new AlertEngine({
      rules: [
        {
          name: 'KilledBySignal',
          expr: { event: { source: 'proc', where: (e) => e.type === 'exit' && Number(e.signal) > 0 }, count: { value: 1, window: '1m' }, groupBy: ['comm', 'signal'] },
          annotations: { summary: '{{ $labels.comm }} killed by signal {{ $labels.signal }}' },
        },
      ],
      notifiers: [callbackNotifier((n) => void notes.push(n))],
    });
    engine.addEventSource('proc', (signal) => reader!.events!({ signal }) as AsyncIterable<object>);
    try {
      // clean exit first: must not fire
      await new Promise<void>((res) => spawn(bin, ['0.05'], { stdio: 'ignore' }).once('exit', () => res()));
      const victim = spawn(bin, ['30'], { stdio: 'ignore' });
      await new Promise((r) => setTimeout(r, 200));
      victim.kill('SIGKILL');
      const end = Date.now() + 10_000;
      while (Date.now() < end && !engine.alerts().some((a) => a.state === 'firing')) await new Promise((r) => setTimeout(r, 50));
      await engine.flush();
      const firing = engine.alerts().filter((a) => a.state === 'firing');
      expect(firing.map((a) => a.labels)).toEqual([{ alertname: 'KilledBySignal', comm: COMM, signal: '9' }]);
      expect(firing[0]!.value).toBe(1); // the clean exit was seen but did not count
      expect(notes[0]!.alerts[0]!.annotations.summary).toBe(`${COMM} killed by signal 9`);
      expect(engine.stats.events).toBeGreaterThanOrEqual(2);
    } finally {
      await engine.close();
    }
  });
});
