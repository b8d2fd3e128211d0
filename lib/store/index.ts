/**
 * smoothtask/store: crash-safe JSON documents validated with zod (temp file + fsync +
 * rename + directory fsync), an inter-process lock per document with stale-lock recovery,
 * corrupt files moved aside, and the task queue's persistence on top.
 * @module
 */
export { JsonStore, JsonStoreOptionsSchema, STORE_CHANNELS } from './store.js';
export type { JsonStoreOptions } from './store.js';
export { writeFileDurable, fsyncDir, mkdirDurable } from './atomic.js';
export type { DurableWriteOptions } from './atomic.js';
export { StoreError, StoreIoError, StoreCorruptError, StoreLockError, StoreClosedError } from './errors.js';
export { StoreTaskPersistence, TASK_PERSISTENCE_CHANNELS, type StoreTaskPersistenceOptions } from './task-persistence.js';
