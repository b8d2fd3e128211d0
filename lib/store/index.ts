/**
 * smoothtask/store (work in progress).
 * @module
 */
export {};
