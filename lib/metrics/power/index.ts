/**
 * The `power` family: RAPL powercap counters as watts, hwmon power sensors, and per-process
 * power estimated from CPU time shares.
 * @module
 */
export * from './rapl.js';
