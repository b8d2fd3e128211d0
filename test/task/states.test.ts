import { describe, expect, it } from 'vitest';
import {
  IllegalTransitionError,
  OUTCOME_STATES,
  TASK_EVENTS,
  TASK_STATES,
  TRANSITIONS,
  nextState,
  tryNextState,
  type TaskState,
} from 'smoothtask/task';
import { SmoothtaskError } from '../../lib/errors/index.js';

// The table written out independently, so a change to TRANSITIONS must be made twice on purpose.
const LEGAL: Record<string, TaskState> = {
  'created|enqueue': 'queued',
  'created|cancel': 'cancelled',
  'queued|start': 'starting',
  'queued|cancel': 'cancelled',
  'starting|run': 'running',
  'retrying|enqueue': 'queued',
  'retrying|cancel': 'cancelled',
  'succeeded|clean': 'cleaning',
  'failed|clean': 'cleaning',
  'timed_out|clean': 'cleaning',
  'cancelled|clean': 'cleaning',
  'cleaning|archive': 'archived',
};
for (const s of ['starting', 'running']) {
  Object.assign(LEGAL, {
    [`${s}|succeed`]: 'succeeded',
    [`${s}|fail`]: 'failed',
    [`${s}|time_out`]: 'timed_out',
    [`${s}|cancel`]: 'cancelled',
    [`${s}|retry`]: 'retrying',
    [`${s}|requeue`]: 'queued',
    [`${s}|abandon`]: 'failed',
  });
}

describe('task transition table', () => {
  const pairs = TASK_STATES.flatMap((s) => TASK_EVENTS.map((e) => [s, e] as const));

  it('covers every (state, event) pair: 11 states x 12 events', () => {
    expect(pairs).toHaveLength(132);
  });

  it.each(pairs)('%s --%s-->', (state, event) => {
    const expected = LEGAL[`${state}|${event}`];
    if (expected) {
      expect(nextState(state, event)).toBe(expected);
      expect(tryNextState(state, event)).toBe(expected);
    } else {
      expect(tryNextState(state, event)).toBeUndefined();
      let err: unknown;
      try {
        nextState(state, event, 't-1');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(IllegalTransitionError);
      expect(err).toBeInstanceOf(SmoothtaskError);
      const ie = err as IllegalTransitionError;
      expect(ie.code).toBe('ERR_TASK_ILLEGAL_TRANSITION');
      expect(ie.from).toBe(state);
      expect(ie.event).toBe(event);
      expect(ie.taskId).toBe('t-1');
      expect(ie.message).toContain(`'${event}'`);
    }
  });

  it('has exactly the legal pairs listed, and archived is terminal', () => {
    const n = Object.values(TRANSITIONS).reduce((a, m) => a + Object.keys(m).length, 0);
    expect(n).toBe(Object.keys(LEGAL).length);
    expect(Object.keys(TRANSITIONS.archived)).toHaveLength(0);
  });

  it('every outcome is reachable from running and leads only to cleaning', () => {
    const reach = new Set(Object.values(TRANSITIONS.running));
    for (const o of OUTCOME_STATES) {
      expect(reach.has(o)).toBe(true);
      expect(Object.values(TRANSITIONS[o])).toEqual(['cleaning']);
    }
  });
});
