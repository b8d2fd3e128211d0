/**
 * Snapshot schema of the `power` family.
 * @module
 */
import { z } from 'zod';
import { SnapshotBaseSchema } from '../family.js';

/** Snapshot of the `power` family. */
export const PowerSnapshotSchema = SnapshotBaseSchema.extend({
  family: z.literal('power'),
  /** RAPL zones: average power since the previous read (null on the first read). */
  rapl: z.array(z.object({ zone: z.string(), name: z.string(), parent: z.string().nullable(), watts: z.number().nullable(), energyJoules: z.number(), wraps: z.number() })),
  /** Sum of the top-level `package-*` zones, W (null without RAPL or on the first read). */
  packageWatts: z.number().nullable(),
  /** hwmon power sensors (W) — AMD PPT, GPU boards, PSUs. */
  hwmonPower: z.array(z.object({ chip: z.string(), sensor: z.string(), label: z.string(), watts: z.number().nullable() })),
  /** Per-process estimate (Kepler approach), the most power first; empty when disabled or on the first read. */
  processes: z.array(
    z.object({ pid: z.number(), comm: z.string(), cpuSeconds: z.number(), share: z.number(), watts: z.number().nullable(), joules: z.number() }),
  ),
  /** What this host lacks, in words. */
  lacks: z.array(z.string()),
});
/** Snapshot of the `power` family. */
export type PowerSnapshot = z.infer<typeof PowerSnapshotSchema>;
