/**
 * smoothtask/notify (work in progress).
 * @module
 */
export {};
