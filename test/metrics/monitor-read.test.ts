// monitor.read() against readers registered by user code that misbehave: one throws instead of
// rejecting, one returns its snapshot instead of a promise, one rejects. Each failure lands in
// `errors` under its family; the other families' snapshots still come back.
import { describe, expect, it } from 'vitest';
import { createMonitor, registerFamily, type MetricReader, type SnapshotBase } from 'smoothtask/metrics';

function reader(family: string, read: () => unknown): MetricReader {
  return {
    family,
    backend: 'stub',
    closed: false,
    read: read as () => Promise<SnapshotBase>,
    memoryBytes: () => 0,
    close: () => {},
    [Symbol.dispose]: () => {},
  };
}

const snap = (family: string): SnapshotBase => ({ family, backend: 'stub', timestamp: Date.now() });

registerFamily('t-throws', () => reader('t-throws', () => { throw new Error('thrown, not rejected'); }), { backends: ['stub'] });
registerFamily('t-plain', () => reader('t-plain', () => snap('t-plain')), { backends: ['stub'] });
registerFamily('t-rejects', () => reader('t-rejects', () => Promise.reject(new Error('rejected'))), { backends: ['stub'] });
registerFamily('t-ok', () => reader('t-ok', async () => snap('t-ok')), { backends: ['stub'] });

describe('monitor.read() with readers from user code', () => {
  it('a reader that throws, one that returns a plain snapshot and one that rejects: errors per family, the rest read', async () => {
    const m = await createMonitor({ families: ['t-throws', 't-plain', 't-rejects', 't-ok'] });
    try {
      for (let i = 0; i < 2; i++) {
        const { snapshots, errors } = await m.read();
        const s = snapshots as Record<string, SnapshotBase>;
        expect(Object.keys(s).sort()).toEqual(['t-ok', 't-plain']);
        expect(s['t-plain']!.family).toBe('t-plain');
        expect(Object.keys(errors).sort()).toEqual(['t-rejects', 't-throws']);
        expect(errors['t-throws']!.message).toBe('thrown, not rejected');
        expect(errors['t-rejects']!.message).toBe('rejected');
      }
    } finally {
      m.close();
    }
  });
});
