/**
 * The `power` family: RAPL powercap counters as watts, hwmon power sensors, and per-process
 * power estimated from CPU time shares.
 * @module
 */
import './register.js';

export * from './rapl.js';
export * from './schema.js';
export * from './reader.js';
export * from './values.js';
