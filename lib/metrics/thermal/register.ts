/**
 * Registers the `thermal` family with the metrics registry.
 * @internal
 */
import { registerFamily } from '../family.js';
import { openThermalReader, thermalMapSizes } from './reader.js';


registerFamily(
  'thermal',
  (ctx) => openThermalReader({ backend: ctx.backend === 'sysfs' ? 'sysfs' : 'ebpf' }, { filter: ctx.filter, ...(ctx.backend === 'ebpf' && ctx.object ? { object: ctx.object } : {}) }),
  {
    backends: ['ebpf', 'sysfs'],
    bpfObject: 'thermal.bpf.o',
    mapSizes: thermalMapSizes,
    description: 'thermal zones, hwmon sensors, CPU frequency/idle residency, temperature and trip events',
  },
);
