/**
 * smoothtask/metrics (work in progress).
 * @module
 */
export {};
