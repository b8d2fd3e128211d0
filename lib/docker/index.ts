/**
 * smoothtask/docker (work in progress).
 * @module
 */
export {};
