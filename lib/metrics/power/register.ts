/**
 * Registers the `power` family with the metrics registry.
 * @internal
 */
import { registerFamily } from '../family.js';
import { openPowerReader } from './reader.js';


registerFamily('power', (ctx) => openPowerReader({}, { filter: ctx.filter }), {
  backends: ['sysfs'],
  description: 'RAPL package/core/dram watts, hwmon power sensors, per-process power estimate',
});
