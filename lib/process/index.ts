/**
 * smoothtask/process (work in progress).
 * @module
 */
export {};
