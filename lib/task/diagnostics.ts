/**
 * `node:diagnostics_channel` channels of the task module. Subscribe with
 * `diagnostics_channel.subscribe(name, fn)`; no logger dependency.
 * @module
 */
import { channel } from 'node:diagnostics_channel';

/** Channel names. */
export const TASK_CHANNELS = {
  /** `{ task, from, to, event, at, reason }` after each persisted transition. */
  transition: 'smoothtask:task:transition',
  /** `{ taskId, stream, chunk, at }` for each log chunk. */
  log: 'smoothtask:task:log',
  /** `{ taskId?, error, where }` for errors that have no caller to reject (listener, persistence). */
  error: 'smoothtask:task:error',
} as const;

/** @internal */
export const transitionChannel = channel(TASK_CHANNELS.transition);
/** @internal */
export const logChannel = channel(TASK_CHANNELS.log);
/** @internal */
export const errorChannel = channel(TASK_CHANNELS.error);
