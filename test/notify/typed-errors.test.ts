// Issue 12 item 13: what aggregate, metrics and notify throw is typed (these threw plain
// RangeError/TypeError/Error before). Bad options are ConfigError; runtime failures the
// module's error class.
import { describe, expect, it } from 'vitest';
import { ewma, hoppingWindow, histogramPercentile, LoadAverageSampler, slidingWindow } from 'smoothtask/aggregate';
import { createMonitor, MetricsError, registerFamily } from 'smoothtask/metrics';
import { parseDuration } from 'smoothtask/notify';
import { ConfigError, SmoothtaskError } from '../../lib/errors/index.js';

describe('typed errors for bad options', () => {
  it.each([
    ['parseDuration', () => parseDuration('5 parsecs')],
    ['histogramPercentile', () => histogramPercentile([1, 2], 2)],
    ['ewma', () => ewma({ time: () => 0, value: () => 0 } as never)],
    ['hoppingWindow', () => hoppingWindow({ time: () => 0, sizeMs: 0, hopMs: 1 } as never)],
    ['slidingWindow', () => slidingWindow({ time: () => 0, sizeMs: -1 })],
    ['LoadAverageSampler', () => new LoadAverageSampler({ intervalMs: 0 })],
    ['registerFamily', () => registerFamily('Bad Name', async () => ({}) as never)],
  ])('%s throws ConfigError', (_name, fn) => {
    const e = (() => {
      try {
        fn();
      } catch (x) {
        return x;
      }
      return undefined;
    })();
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).code).toBe('ERR_CONFIG');
  });

  it('createMonitor: an unknown family is a ConfigError in failures, and MetricsError (cause: it) when required', async () => {
    const m = await createMonitor({ families: ['no-such-family'] });
    expect(m.failures.get('no-such-family')).toBeInstanceOf(ConfigError);
    m.close();
    const e = await createMonitor({ families: ['no-such-family'], required: true }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(MetricsError);
    expect(e).toBeInstanceOf(SmoothtaskError);
    expect((e as MetricsError).code).toBe('ERR_METRICS_OPEN');
    expect((e as MetricsError).cause).toBeInstanceOf(ConfigError);
  });
});
