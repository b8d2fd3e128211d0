/**
 * The `thermal` family: thermal zones, cooling devices and hwmon sensors from sysfs, and CPU
 * frequency / idle residency and temperature events from the thermal and power tracepoints.
 * @module
 */
import './register.js';

export * from './zones.js';
export * from './hwmon.js';
export * from './schema.js';
export * from './reader.js';
export * from './values.js';
export { SysfsLayoutCache } from './sysfs-util.js';
