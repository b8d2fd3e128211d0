/**
 * smoothtask/aggregate (work in progress).
 * @module
 */
export {};
