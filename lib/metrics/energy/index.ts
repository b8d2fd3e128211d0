/**
 * Per-process power and energy estimated from RAPL package power and CPU time shares (the
 * Kepler approach). Part of the `power` family.
 * @module
 */
export * from './estimate.js';
