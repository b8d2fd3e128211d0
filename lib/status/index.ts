/**
 * smoothtask/status (work in progress).
 * @module
 */
export {};
