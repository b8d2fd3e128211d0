/**
 * smoothtask/webhook (work in progress).
 * @module
 */
export {};
