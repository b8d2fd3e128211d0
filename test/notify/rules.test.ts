import { describe, expect, it } from 'vitest';
import { ConfigError } from 'smoothtask';
import { histogramOf } from 'smoothtask/aggregate';
import {
  AlertEngine,
  callbackNotifier,
  formatNotificationLines,
  logNotifier,
  type AlertTransition,
  type Notification,
} from 'smoothtask/notify';

/** A synthetic reader whose values the test sets. */
function syntheticReader<T extends Record<string, unknown>>(init: T) {
  const state: T & { fail: boolean } = { ...init, fail: false };
  return {
    state,
    read: async () => {
      if (state.fail) throw new Error('reader down');
      const { fail: _f, ...rest } = state;
      return { family: 'node', backend: 'stub', timestamp: Date.now(), ...rest };
    },
  };
}

function harness(opts: ConstructorParameters<typeof AlertEngine>[0]) {
  const notes: Notification[] = [];
  const transitions: AlertTransition[] = [];
  const engine = new AlertEngine({ ...opts, now: () => 0, notifiers: [callbackNotifier((n) => void notes.push(n))] });
  engine.on('alert', (t: AlertTransition) => transitions.push(t));
  return { engine, notes, transitions, states: () => transitions.map((t) => `${t.from}->${t.to}`) };
}

describe('alert rules with a fake clock', () => {
  it('threshold rule goes inactive → pending → firing → resolved, notifying firing and resolved once', async () => {
    const r = syntheticReader({ utilisation: 0.5 });
    const h = harness({
      route: { groupWait: 0, groupInterval: 1000, repeatInterval: 60_000 },
      rules: [
        {
          name: 'HighCpu',
          expr: { metric: 'node.utilisation', op: '>', value: 0.9 },
          for: '5s',
          labels: { severity: 'page' },
          annotations: { summary: 'cpu at {{ $value }} ({{ $labels.severity }})' },
        },
      ],
    });
    h.engine.addSource('node', r);
    await h.engine.evaluate(0);
    expect(h.engine.alerts()).toEqual([]);
    r.state.utilisation = 0.95;
    await h.engine.evaluate(1000);
    expect(h.engine.alerts()[0]!.state).toBe('pending');
    await h.engine.evaluate(5000); // only 4 s active
    expect(h.engine.alerts()[0]!.state).toBe('pending');
    expect(h.notes).toHaveLength(0);
    await h.engine.evaluate(6000);
    expect(h.engine.alerts()[0]!.state).toBe('firing');
    await h.engine.flush();
    expect(h.notes).toHaveLength(1);
    expect(h.notes[0]!.status).toBe('firing');
    expect(h.notes[0]!.alerts[0]!.labels).toEqual({ alertname: 'HighCpu', severity: 'page' });
    expect(h.notes[0]!.alerts[0]!.annotations.summary).toBe('cpu at 0.95 (page)');
    // still firing: no duplicate notification
    await h.engine.evaluate(7000);
    await h.engine.evaluate(8000);
    r.state.utilisation = 0.2;
    await h.engine.evaluate(9000);
    expect(h.engine.alerts()[0]!.state).toBe('resolved');
    await h.engine.flush();
    expect(h.notes.map((n) => n.status)).toEqual(['firing', 'resolved']);
    expect(h.notes[1]!.alerts[0]!.endsAt).toBe(9000);
    expect(h.states()).toEqual(['inactive->pending', 'pending->firing', 'firing->resolved']);
    // back to active: a new pending cycle
    r.state.utilisation = 0.99;
    await h.engine.evaluate(10_000);
    expect(h.engine.alerts()[0]!.state).toBe('pending');
    expect(h.engine.alerts()[0]!.activeAt).toBe(10_000);
  });

  it('pending that clears before `for` goes back to inactive and never notifies', async () => {
    const r = syntheticReader({ utilisation: 1 });
    const h = harness({ rules: [{ name: 'A', expr: { metric: 'node.utilisation', op: '>=', value: 1 }, for: 3000 }] });
    h.engine.addSource('node', r);
    await h.engine.evaluate(0);
    r.state.utilisation = 0.5;
    await h.engine.evaluate(1000);
    expect(h.engine.alerts()).toEqual([]);
    expect(h.states()).toEqual(['inactive->pending', 'pending->inactive']);
    await h.engine.flush();
    expect(h.notes).toHaveLength(0);
  });

  it('hysteresis: fires above 0.9, stays firing until below 0.8', async () => {
    const r = syntheticReader({ utilisation: 0.95 });
    const rule = { name: 'H', expr: { metric: 'node.utilisation', op: '>' as const, value: 0.9, resolve: { value: 0.8 } } };
    const h = harness({ rules: [rule] });
    h.engine.addSource('node', r);
    await h.engine.evaluate(0);
    expect(h.engine.alerts()[0]!.state).toBe('firing');
    r.state.utilisation = 0.85;
    await h.engine.evaluate(1000);
    expect(h.engine.alerts()[0]!.state).toBe('firing');
    r.state.utilisation = 0.79;
    await h.engine.evaluate(2000);
    expect(h.engine.alerts()[0]!.state).toBe('resolved');
    // 0.85 does not fire again (below the firing threshold)
    r.state.utilisation = 0.85;
    await h.engine.evaluate(3000);
    expect(h.engine.alerts()[0]!.state).toBe('resolved');
  });

  it('rate rule over a counter with a reset, per label set', async () => {
    const r = syntheticReader({ processes: [{ pid: 1, comm: 'a', cpuTimeNs: 0 }, { pid: 2, comm: 'b', cpuTimeNs: 0 }] });
    const h = harness({ rules: [{ name: 'Burn', expr: { rate: { metric: 'node.processes.cpuTimeNs', window: '2s' }, op: '>', value: 5e8 } }] });
    h.engine.addSource('node', r);
    const set = (a: number, b: number) => (r.state.processes = [{ pid: 1, comm: 'a', cpuTimeNs: a }, { pid: 2, comm: 'b', cpuTimeNs: b }]);
    await h.engine.evaluate(0);
    set(9e8, 1e8);
    await h.engine.evaluate(1000);
    const firing = h.engine.alerts().filter((a) => a.state === 'firing');
    expect(firing.map((a) => a.labels.pid)).toEqual(['1']);
    expect(firing[0]!.value).toBeCloseTo(9e8, 0);
    // pid 1 restarts its counter: increase counted from 0 (3e8 over the last second)
    set(3e8, 2e8);
    await h.engine.evaluate(2000);
    // window [0, 2000]: increase 9e8 + 3e8 over 2 s = 6e8/s, still firing
    expect(h.engine.alerts().find((a) => a.labels.pid === '1')!.value).toBeCloseTo(6e8, 0);
    set(3e8, 3e8);
    await h.engine.evaluate(3000);
    await h.engine.evaluate(4000);
    expect(h.engine.alerts().find((a) => a.labels.pid === '1')!.state).toBe('resolved');
  });

  it('percentile rule on a log2 histogram, over the window increase', async () => {
    const fast = histogramOf(Array.from({ length: 100 }, () => 10));
    const r = syntheticReader({ runqLatencyHist: fast as number[] });
    const h = harness({ rules: [{ name: 'Lat', expr: { percentile: { metric: 'node.runqLatencyHist', q: 0.99, window: '1s' }, op: '>', value: 1000 } }] });
    h.engine.addSource('node', r);
    await h.engine.evaluate(0);
    expect(h.engine.alerts()).toEqual([]);
    // 50 new slow observations: p99 of the window's increase jumps to the 4096 slot
    r.state.runqLatencyHist = [...histogramOf([...Array.from({ length: 100 }, () => 10), ...Array.from({ length: 50 }, () => 5000)])];
    await h.engine.evaluate(1000);
    const a = h.engine.alerts()[0]!;
    expect(a.state).toBe('firing');
    expect(a.value).toBeGreaterThanOrEqual(4096);
    expect(a.value).toBeLessThan(8192);
  });

  it('absent rule fires when a metric (or its whole source) disappears', async () => {
    const r = syntheticReader({ utilisation: 0.1 });
    const h = harness({ rules: [{ name: 'NoData', expr: { absent: { metric: 'node.utilisation' } }, for: 1000 }] });
    h.engine.addSource('node', r);
    await h.engine.evaluate(0);
    expect(h.engine.alerts()).toEqual([]);
    r.state.fail = true;
    await h.engine.evaluate(1000);
    await h.engine.evaluate(2000);
    expect(h.engine.alerts()[0]!.state).toBe('firing');
    expect(h.engine.failingSources.get('node')).toBe('reader down');
    r.state.fail = false;
    await h.engine.evaluate(3000);
    expect(h.engine.alerts()[0]!.state).toBe('resolved');
  });

  it('function rule with labelled values; keepFiringFor holds a firing alert', async () => {
    let vals = [
      { labels: { gpu: '0' }, value: 0.95 },
      { labels: { gpu: '1' }, value: 0.2 },
    ];
    const h = harness({ rules: [{ name: 'GpuMem', expr: { fn: () => vals, op: '>', value: 0.9 }, keepFiringFor: 2000 }] });
    await h.engine.evaluate(0);
    expect(h.engine.alerts().map((a) => [a.labels.gpu, a.state])).toEqual([['0', 'firing']]);
    vals = [{ labels: { gpu: '0' }, value: 0.1 }];
    await h.engine.evaluate(1000);
    expect(h.engine.alerts()[0]!.state).toBe('firing');
    await h.engine.evaluate(2000);
    expect(h.engine.alerts()[0]!.state).toBe('resolved');
  });

  it('groups alerts, waits group_wait, throttles by group_interval and repeats after repeat_interval', async () => {
    const r = syntheticReader({ processes: [] as Array<{ pid: number; comm: string; load: number }> });
    const h = harness({
      route: { groupBy: ['alertname'], groupWait: 2000, groupInterval: 5000, repeatInterval: 20_000 },
      rules: [{ name: 'Hot', expr: { metric: 'node.processes.load', op: '>', value: 1 } }],
    });
    h.engine.addSource('node', r);
    r.state.processes = [{ pid: 1, comm: 'a', load: 2 }];
    await h.engine.evaluate(0);
    r.state.processes = [{ pid: 1, comm: 'a', load: 2 }, { pid: 2, comm: 'b', load: 3 }];
    await h.engine.evaluate(1000);
    await h.engine.flush();
    expect(h.notes).toHaveLength(0); // group wait
    await h.engine.evaluate(2000);
    await h.engine.flush();
    expect(h.notes).toHaveLength(1);
    expect(h.notes[0]!.alerts.map((a) => a.labels.pid)).toEqual(['1', '2']);
    expect(h.notes[0]!.commonLabels).toEqual({ alertname: 'Hot' });
    // flapping pid 2: resolved at 3000, firing again at 4000 → nothing new before the group interval
    r.state.processes = [{ pid: 1, comm: 'a', load: 2 }];
    await h.engine.evaluate(3000);
    r.state.processes = [{ pid: 1, comm: 'a', load: 2 }, { pid: 2, comm: 'b', load: 3 }];
    await h.engine.evaluate(4000);
    await h.engine.evaluate(7000); // group interval due: state equals what was told → deduplicated
    await h.engine.flush();
    expect(h.notes).toHaveLength(1);
    for (let t = 8000; t < 22_000; t += 1000) await h.engine.evaluate(t);
    await h.engine.flush();
    expect(h.notes).toHaveLength(1);
    await h.engine.evaluate(22_000); // repeat interval since the last notification at 2000
    await h.engine.flush();
    expect(h.notes).toHaveLength(2);
    expect(h.notes[1]!.repeat).toBe(true);
    // a change is told at the next group interval tick
    r.state.processes = [{ pid: 2, comm: 'b', load: 3 }];
    await h.engine.evaluate(23_000);
    await h.engine.evaluate(27_000);
    await h.engine.flush();
    expect(h.notes).toHaveLength(3);
    expect(h.notes[2]!.alerts.map((a) => `${a.labels.pid}:${a.status}`)).toEqual(['2:firing', '1:resolved']);
    expect(h.notes[2]!.status).toBe('firing');
  });

  it('event rules: a count in a window over an async iterable of events', async () => {
    let now = 0;
    const notes: Notification[] = [];
    const engine = new AlertEngine({
      now: () => now,
      rules: [
        { name: 'OomKill', expr: { event: { source: 'proc', match: { type: 'oom_kill' } }, count: { op: '>=', value: 1, window: '1m' }, groupBy: ['comm'] } },
        {
          name: 'RetransmitStorm',
          expr: { event: { source: 'net', match: { type: 'retransmit' } }, count: { op: '>=', value: 3, window: '10s' } },
        },
        { name: 'KilledBySignal', expr: { event: { source: 'proc', where: (e) => e.type === 'exit' && Number(e.signal) > 0 }, count: { value: 1, window: '30s' } } },
      ],
      notifiers: [callbackNotifier((n) => void notes.push(n))],
    });
    const q: object[] = [];
    let wake: (() => void) | undefined;
    async function* stream(signal: AbortSignal) {
      while (!signal.aborted) {
        while (q.length) yield q.shift()!;
        await new Promise<void>((r) => {
          wake = r;
          signal.addEventListener('abort', () => r(), { once: true });
        });
      }
    }
    const push = async (ev: object) => {
      q.push(ev);
      wake?.();
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
      await engine.flush();
    };
    engine.addEventSource('proc', stream);
    engine.addEventSource('net', (async function* () {
      for (let i = 0; i < 3; i++) yield { type: 'retransmit', sport: 1000 + i };
    })());
    await push({ type: 'exit', pid: 5, signal: 0 });
    await push({ type: 'oom_kill', comm: 'java', pid: 77 });
    await push({ type: 'exit', pid: 6, signal: 9 });
    const firing = () => engine.alerts().filter((a) => a.state === 'firing').map((a) => a.labels.comm ? `${a.rule}:${a.labels.comm}` : a.rule).sort();
    expect(firing()).toEqual(['KilledBySignal', 'OomKill:java', 'RetransmitStorm']);
    expect(notes.length).toBeGreaterThan(0);
    now = 20_000; // retransmits left their 10 s window
    await engine.evaluate(now);
    expect(firing()).toEqual(['KilledBySignal', 'OomKill:java']);
    now = 61_000;
    await engine.evaluate(now);
    expect(firing()).toEqual([]);
    expect(engine.alerts().every((a) => a.state === 'resolved')).toBe(true);
    await engine.close();
  });

  it('validates config with precise errors; accepts a JSON config', () => {
    expect(() => new AlertEngine({ rules: [{ name: 'x', expr: { metric: 'a', op: '>>' as '>', value: 1 } }] })).toThrow(ConfigError);
    try {
      new AlertEngine({ rules: [{ name: 'x', expr: { metric: 'a', op: '>', value: 1 }, for: '5 parsecs' }] });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as ConfigError).issues.join()).toContain('rules.0.for');
    }
    const json = JSON.parse(
      '{"evaluationInterval":"250ms","route":{"groupBy":["alertname","pid"],"groupWait":"1s"},"rules":[{"name":"Cpu","expr":{"rate":{"metric":"cpu.processes.cpuTimeNs","labels":{"comm":["a","b"]},"window":"5s"},"op":">","value":9e8},"for":"5s"}]}',
    );
    const e = new AlertEngine(json);
    expect(e.alerts()).toEqual([]);
  });

  it('log notifier writes one line per alert', async () => {
    const lines: string[] = [];
    const engine = new AlertEngine({ rules: [{ name: 'Always', expr: { fn: () => true }, labels: { team: 'x' } }], notifiers: [logNotifier({ write: (l) => lines.push(l) })], now: () => 0 });
    await engine.evaluate(0);
    await engine.flush();
    expect(lines).toEqual(['[FIRING] Always {team="x"} value=1']);
    expect(formatNotificationLines({ groupKey: '', status: 'resolved', groupLabels: {}, commonLabels: {}, commonAnnotations: {}, alerts: [], timestamp: 0, repeat: false })).toEqual([]);
  });
});

describe('event rules at volume, and their index by source', () => {
  it('a storm of 200,000 events: the count in a sliding window is exact as the window moves', async () => {
    let now = 0;
    const engine = new AlertEngine({
      now: () => now,
      rules: [{ name: 'Storm', expr: { event: { source: 's' }, count: { op: '>=', value: 1, window: '10s' } } }],
    });
    // 20,000 events per second for 10 s: t = i / 20 ms, 0 … 9,999.95
    for (let i = 0; i < 200_000; i++) {
      now = i / 20;
      engine.pushEvent('s', { i });
    }
    now = 9_999.95;
    await engine.evaluate(now);
    expect(engine.alerts().find((a) => a.rule === 'Storm')?.value).toBe(200_000);
    // 5 s later the events at t <= 4,999.5 (i <= 99,990) left the window: 100,009 remain
    now = 14_999.5;
    await engine.evaluate(now);
    expect(engine.alerts().find((a) => a.rule === 'Storm')?.value).toBe(100_009);
    now = 20_000;
    await engine.evaluate(now);
    expect(engine.alerts().every((a) => a.state !== 'firing')).toBe(true);
    await engine.close();
  });

  it('batches: counts per group and without groups, match and where applied per event, non-objects skipped, the window moves per batch time', async () => {
    let now = 0;
    const engine = new AlertEngine({
      now: () => now,
      rules: [
        { name: 'All', expr: { event: { source: 's', match: { type: 'x' } }, count: { value: 1, window: '10s' } } },
        { name: 'ByComm', expr: { event: { source: 's', where: (e) => Number(e.n) % 2 === 0 }, count: { value: 1, window: '10s' }, groupBy: ['comm'] } },
      ],
    });
    const batch = (k: number) => Array.from({ length: k }, (_, i) => ({ type: i % 3 === 0 ? 'y' : 'x', n: i, comm: i % 4 === 0 ? 'a' : 'b' }));
    engine.pushEvents('s', [...batch(12), null, 7, 'text']); // x: 8 of 12; even n: 6 (a: 0,4,8; b: 2,6,10)
    now = 5_000;
    const src = (async function* () {
      yield batch(6); // x: 4; even: 0 (a), 2 (b), 4 (a)
      yield [];
      yield 'not a batch' as unknown as unknown[];
    })();
    engine.addEventBatchSource('s', src);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    await engine.evaluate(now);
    const value = (rule: string, comm?: string) => engine.alerts().find((a) => a.rule === rule && (comm === undefined || a.labels.comm === comm))?.value;
    expect(value('All')).toBe(12);
    expect(value('ByComm', 'a')).toBe(5);
    expect(value('ByComm', 'b')).toBe(4);
    expect(engine.stats.events).toBe(18); // the three non-objects were not counted
    // the first batch (t = 0) leaves the window at t = 10 s, the second (t = 5 s) at 15 s
    now = 12_000;
    await engine.evaluate(now);
    expect(value('All')).toBe(4);
    expect(value('ByComm', 'a')).toBe(2);
    now = 16_000;
    await engine.evaluate(now);
    expect(engine.alerts().filter((a) => a.state === 'firing')).toEqual([]);
    await engine.close();
  });

  it('replacing an event rule with another source moves it: events of the old source no longer count', async () => {
    const engine = new AlertEngine({ now: () => 0, rules: [{ name: 'R', expr: { event: { source: 'a' }, count: { value: 1, window: '1m' } } }] });
    engine.pushEvent('a', { x: 1 });
    await engine.evaluate(0);
    expect(engine.alerts().map((a) => `${a.rule}:${a.state}`)).toEqual(['R:firing']);
    engine.removeRule('R');
    engine.addRule({ name: 'R', expr: { event: { source: 'b' }, count: { value: 1, window: '1m' } } });
    engine.pushEvent('a', { x: 2 });
    await engine.evaluate(0);
    expect(engine.alerts().filter((a) => a.state === 'firing')).toEqual([]);
    engine.pushEvent('b', { x: 3 });
    await engine.evaluate(0);
    expect(engine.alerts().filter((a) => a.state === 'firing').map((a) => a.rule)).toEqual(['R']);
    // addRule over an existing name (no removeRule) re-indexes too
    engine.addRule({ name: 'R', expr: { event: { source: 'c' }, count: { value: 5, window: '1m' } } });
    for (let i = 0; i < 5; i++) engine.pushEvent('b', { i });
    await engine.evaluate(0);
    expect(engine.alerts().filter((a) => a.state === 'firing')).toEqual([]);
    await engine.close();
  });
});
