/**
 * Snapshot and event schemas of the `thermal` family.
 * @module
 */
import { z } from 'zod';
import { SnapshotBaseSchema } from '../family.js';

const TripSchema = z.object({ index: z.number(), type: z.string(), temperatureC: z.number().nullable(), hysteresisC: z.number().nullable() });

/** A thermal zone: sysfs state plus what the thermal tracepoints saw. */
export const ThermalZoneSnapshotSchema = z.object({
  id: z.number(),
  name: z.string(),
  type: z.string(),
  temperatureC: z.number().nullable(),
  mode: z.string().nullable(),
  policy: z.string().nullable(),
  trips: z.array(TripSchema),
  /** thermal_temperature events for this zone since the reader opened (eBPF backend). */
  updates: z.number(),
  /** thermal_zone_trip events for this zone since the reader opened (eBPF backend). */
  tripsCrossed: z.number(),
});

const SensorSchema = z.object({
  kind: z.enum(['temperature', 'fan', 'power', 'voltage', 'current', 'energy', 'humidity']),
  sensor: z.string(),
  label: z.string(),
  value: z.number().nullable(),
  min: z.number().optional(),
  max: z.number().optional(),
  crit: z.number().optional(),
  alarm: z.boolean().optional(),
});

/** Residency in one state (a frequency or an idle state) of one CPU. */
export const ResidencySchema = z.object({
  /** kHz for frequencies, the cpuidle state index for idle states. */
  state: z.number(),
  /** Time spent in the state since the reader opened, s (the current, open interval included). */
  seconds: z.number(),
  /** Times the state was entered (closed intervals). */
  entries: z.number(),
});

/** Snapshot of the `thermal` family. */
export const ThermalSnapshotSchema = SnapshotBaseSchema.extend({
  family: z.literal('thermal'),
  zones: z.array(ThermalZoneSnapshotSchema),
  coolingDevices: z.array(z.object({ id: z.number(), type: z.string(), curState: z.number().nullable(), maxState: z.number().nullable() })),
  hwmon: z.array(z.object({ chip: z.string(), name: z.string(), device: z.string().nullable(), sensors: z.array(SensorSchema) })),
  /** Per-CPU frequency and idle-state residency (eBPF backend; empty when the tracepoints never fired). */
  cpus: z.array(
    z.object({
      cpu: z.number(),
      /** Frequency last reported by cpu_frequency, kHz (null: never). */
      currentKhz: z.number().nullable(),
      frequency: z.array(ResidencySchema),
      idle: z.array(ResidencySchema),
    }),
  ),
  /** Tracepoint hits since the reader opened. */
  tracepoints: z.object({ temperature: z.number(), trip: z.number(), cpuFrequency: z.number(), cpuIdle: z.number(), eventsDropped: z.number() }),
  /** What this host lacks, in words. */
  lacks: z.array(z.string()),
});
/** Snapshot of the `thermal` family. */
export type ThermalSnapshot = z.infer<typeof ThermalSnapshotSchema>;

/** A temperature change or a trip point crossed (eBPF backend, `events: true`). */
export const ThermalEventSchema = z.object({
  type: z.enum(['temperature', 'trip']),
  /** Kernel monotonic time, ns. */
  monotonicNs: z.number(),
  zoneId: z.number(),
  zone: z.string(),
  temperatureC: z.number(),
  previousC: z.number(),
  /** Trip index (trip events), else -1. */
  trip: z.number(),
  /** `active`, `passive`, `hot`, `critical` (trip events), else ''. */
  tripType: z.string(),
});
/** A thermal event. */
export type ThermalEvent = z.infer<typeof ThermalEventSchema>;
