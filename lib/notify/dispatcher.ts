/**
 * Grouping, deduplication and throttling of alert notifications, the way Alertmanager routes
 * them: alerts are grouped by `groupBy` labels; a new group waits `groupWait` before its first
 * notification; a group is looked at again every `groupInterval` and notified only when its set
 * of alerts (or their states) changed, or when `repeatInterval` passed since the last identical
 * notification while something still fires.
 * @module
 */
import type { Labels } from '../aggregate/samples.js';
import { labelsKey } from '../aggregate/samples.js';
import type { Route } from './schema.js';

/** An alert as it appears in a notification. */
export interface NotifiedAlert {
  /** `firing` or `resolved`. */
  status: 'firing' | 'resolved';
  /** All labels, `alertname` included. */
  labels: Labels;
  /** Expanded annotations. */
  annotations: Record<string, string>;
  /** When it started being active (pending began), ms since the epoch. */
  startsAt: number;
  /** When it fired. */
  firedAt?: number;
  /** When it resolved. */
  endsAt?: number;
  /** Last evaluated value. */
  value: number;
  /** Stable id of the label set. */
  fingerprint: string;
}

/** One notification: a group's alerts at one time. */
export interface Notification {
  /** Stable id of the group (`{alertname="x"}`). */
  groupKey: string;
  /** `firing` when any alert in it fires, else `resolved`. */
  status: 'firing' | 'resolved';
  /** The grouping labels and their values. */
  groupLabels: Labels;
  /** Labels every alert shares. */
  commonLabels: Labels;
  /** Annotations every alert shares. */
  commonAnnotations: Record<string, string>;
  /** The alerts, firing first. */
  alerts: NotifiedAlert[];
  /** When it was produced (engine clock, ms). */
  timestamp: number;
  /** True when this repeats an unchanged notification (`repeatInterval`). */
  repeat: boolean;
}

interface Group {
  key: string;
  labels: Labels;
  alerts: Map<string, NotifiedAlert>;
  nextFlush: number;
  lastSentAt?: number;
  lastHash?: string;
}

/** Groups and throttles alerts into notifications; driven by the engine's clock. */
export class NotificationDispatcher {
  private readonly groups = new Map<string, Group>();
  /** Creates a dispatcher with validated route options. */
  constructor(private readonly route: Route) {}

  private groupLabelsOf(labels: Labels): Labels {
    if (this.route.groupBy.includes('...')) return { ...labels };
    const out: Labels = {};
    for (const k of this.route.groupBy) if (labels[k] !== undefined) out[k] = labels[k]!;
    return out;
  }

  /**
   * Takes the engine's current view: every firing alert and every resolved alert it still
   * remembers. Alerts of a group that are no longer reported count as resolved.
   */
  ingest(alerts: readonly NotifiedAlert[], now: number): void {
    const seen = new Set<string>();
    for (const a of alerts) {
      const gl = this.groupLabelsOf(a.labels);
      const key = `{${labelsKey(gl)}}`;
      let g = this.groups.get(key);
      if (!g) {
        if (a.status === 'resolved') continue; // never notified as firing: nothing to resolve
        g = { key, labels: gl, alerts: new Map(), nextFlush: now + this.route.groupWait };
        this.groups.set(key, g);
      }
      if (a.status === 'resolved' && !g.alerts.has(a.fingerprint)) continue;
      g.alerts.set(a.fingerprint, { ...a });
      seen.add(a.fingerprint);
    }
    for (const g of this.groups.values()) {
      for (const [fp, a] of g.alerts) {
        if (!seen.has(fp) && a.status === 'firing') g.alerts.set(fp, { ...a, status: 'resolved', endsAt: now });
      }
    }
  }

  /** Notifications due at `now`. */
  due(now: number): Notification[] {
    const out: Notification[] = [];
    for (const g of [...this.groups.values()]) {
      if (now < g.nextFlush) continue;
      const alerts = [...g.alerts.values()].sort(
        (a, b) => (a.status === b.status ? a.fingerprint.localeCompare(b.fingerprint) : a.status === 'firing' ? -1 : 1),
      );
      const hash = hashOf(alerts);
      const firing = alerts.some((a) => a.status === 'firing');
      const changed = hash !== g.lastHash;
      const repeatDue = firing && g.lastSentAt !== undefined && now - g.lastSentAt >= this.route.repeatInterval;
      if (alerts.length && (changed || repeatDue)) {
        out.push({
          groupKey: g.key,
          status: firing ? 'firing' : 'resolved',
          groupLabels: { ...g.labels },
          commonLabels: common(alerts.map((a) => a.labels)),
          commonAnnotations: common(alerts.map((a) => a.annotations)),
          alerts,
          timestamp: now,
          repeat: !changed,
        });
        g.lastHash = hash;
        g.lastSentAt = now;
        // resolved alerts are told once, then forgotten
        for (const a of alerts) if (a.status === 'resolved') g.alerts.delete(a.fingerprint);
        // what remains was just told: only a later change (or the repeat interval) notifies again
        g.lastHash = hashOf([...g.alerts.values()]);
      }
      g.nextFlush = now + this.route.groupInterval;
      if (!g.alerts.size) this.groups.delete(g.key);
    }
    return out;
  }

  /** Number of live groups. */
  get size(): number {
    return this.groups.size;
  }
}

function hashOf(alerts: readonly NotifiedAlert[]): string {
  return alerts
    .map((a) => `${a.fingerprint}:${a.status}`)
    .sort()
    .join('|');
}

function common(sets: Array<Record<string, string>>): Record<string, string> {
  if (!sets.length) return {};
  const out: Record<string, string> = { ...sets[0] };
  for (const s of sets.slice(1)) for (const k of Object.keys(out)) if (s[k] !== out[k]) delete out[k];
  return out;
}
