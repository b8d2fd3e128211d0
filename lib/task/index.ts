/**
 * smoothtask/task (work in progress).
 * @module
 */
export {};
