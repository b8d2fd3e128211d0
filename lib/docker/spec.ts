import { z } from 'zod';
import { splitRelativePath } from '../workspace/policy.js';

const EnvSchema = z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'env names must be identifiers'), z.string());
const LabelsSchema = z.record(z.string().min(1), z.string()).refine(
  (l) => Object.keys(l).every((k) => !k.startsWith('smoothtask.')),
  'labels starting with "smoothtask." are reserved',
);

/** A host port published for a container port. */
export const PortSpecSchema = z
  .object({
    /** Port inside the container. */
    container: z.number().int().min(1).max(65535),
    /** Host port; omitted = let smoothtask pick a free one. */
    host: z.number().int().min(1).max(65535).optional(),
    /** Protocol. Only TCP ports are checked against host listening sockets. */
    protocol: z.enum(['tcp', 'udp']).default('tcp'),
    /** Host address to bind. Default loopback. */
    hostIp: z.string().default('127.0.0.1'),
  })
  .strict();
/** Input type of {@link PortSpecSchema}. */
export type PortSpec = z.input<typeof PortSpecSchema>;

/** What to do when a requested host port is taken: fail the task, or pick another free port. */
export const PortConflictPolicySchema = z.enum(['refuse', 'reassign']);

/** Resource limits of a container. */
export const LimitsSchema = z
  .object({
    /** Memory limit in bytes (OOM kill above it). */
    memoryBytes: z.number().int().min(6 * 1024 * 1024).optional(),
    /** CPU quota in cores (e.g. 0.5). */
    cpus: z.number().positive().max(1024).optional(),
    /** Maximum number of processes/threads. */
    pids: z.number().int().positive().optional(),
  })
  .strict();

/** A Dockerfile build that produces the task's image. */
export const BuildSpecSchema = z
  .object({
    /** Build context directory on the host. */
    context: z.string().min(1),
    /** Dockerfile path relative to the context. */
    dockerfile: z.string().default('Dockerfile'),
    /** Build arguments. */
    args: z.record(z.string(), z.string()).default({}),
    /** Remove the built image when the task ends. */
    removeImage: z.boolean().default(true),
  })
  .strict();

function isInsidePath(p: string): boolean {
  try {
    splitRelativePath(p);
    return true;
  } catch {
    return false;
  }
}

/** Where outputs are looked for and how big their archive may get. */
export const OutputsSchema = z
  .object({
    /** Directory inside the workspace whose content is zipped on completion (relative: no `..`, absolute path, NUL, backslash or drive letter). */
    dir: z
      .string()
      .default('out')
      .refine(isInsidePath, 'must be a relative path inside the workspace (no `..`, absolute path, NUL, backslash or drive letter)'),
    /** Cap on the uncompressed outputs; over it the task records an OutputTooLargeError and no ZIP. */
    maxBytes: z.number().int().positive().default(256 * 1024 * 1024),
  })
  .strict();

/** Spec of a container task. Exactly one of `image` and `build` is required. */
export const ContainerTaskSpecSchema = z
  .object({
    /** Image reference (must exist locally or be pullable). */
    image: z.string().min(1).optional(),
    /** Build the image from a Dockerfile instead. */
    build: BuildSpecSchema.optional(),
    /** Command (argv). Default: the image's CMD. */
    command: z.array(z.string()).optional(),
    /** Entrypoint override (argv). */
    entrypoint: z.array(z.string()).optional(),
    /** Environment variables. */
    env: EnvSchema.default({}),
    /** Working directory inside the container. Default: the workspace mount. */
    workdir: z.string().optional(),
    /** Mount point of the per-task workspace inside the container. */
    workspaceMount: z.string().startsWith('/').default('/work'),
    /** Extra bind mounts. */
    mounts: z
      .array(
        z
          .object({
            /** Absolute host path. */
            source: z.string().startsWith('/'),
            /** Absolute path in the container. */
            target: z.string().startsWith('/'),
            /** Mount read-only (default). */
            readOnly: z.boolean().default(true),
          })
          .strict(),
      )
      .default([]),
    /** Published ports. */
    ports: z.array(PortSpecSchema).default([]),
    /** Port collision policy. */
    onPortConflict: PortConflictPolicySchema.default('refuse'),
    /** Resource limits. */
    limits: LimitsSchema.default({}),
    /** Extra labels (keys starting with `smoothtask.` are reserved). */
    labels: LabelsSchema.default({}),
    /** Network mode (`bridge`, `none`, `host` or a network name). */
    network: z.string().default('bridge'),
    /** User to run as (`uid[:gid]` or name). */
    user: z.string().optional(),
    /**
     * Wall-clock limit of the run in ms, enforced by the runner itself. Under a `TaskQueue`
     * prefer the submit option `timeoutMs` (the task then ends `timed_out`; with this one it
     * ends `failed` with an error saying it timed out).
     */
    timeoutMs: z.number().int().positive().optional(),
    /** Grace between stop (SIGTERM) and kill when stopping on timeout or cancel, ms. Default: the queue's `killAfterMs`, else 2000. */
    stopGraceMs: z.number().int().min(0).optional(),
    /** Outputs archiving. */
    outputs: OutputsSchema.default({ dir: 'out', maxBytes: 256 * 1024 * 1024 }),
  })
  .strict()
  .refine((s) => (s.image === undefined) !== (s.build === undefined), { message: 'exactly one of image and build is required', path: ['image'] });
/** Input type of {@link ContainerTaskSpecSchema}. */
export type ContainerTaskSpec = z.input<typeof ContainerTaskSpecSchema>;
/** Parsed (defaults applied) container task spec. */
export type ContainerTaskConfig = z.output<typeof ContainerTaskSpecSchema>;

/** Spec of a compose task. */
export const ComposeTaskSpecSchema = z
  .object({
    /** Compose file(s), applied in order. */
    files: z.array(z.string().min(1)).min(1),
    /** Project directory (relative paths in the files resolve against it). Default: the first file's directory. */
    projectDir: z.string().optional(),
    /** Environment for variable substitution; `SMOOTHTASK_WORKSPACE`, `SMOOTHTASK_OUTPUTS` and `SMOOTHTASK_TASK_ID` are added. */
    env: EnvSchema.default({}),
    /** Services to start (default: all). */
    services: z.array(z.string().min(1)).default([]),
    /** The service whose exit ends the task and gives its exit code; default: wait until all services exited. */
    exitFrom: z.string().optional(),
    /** How long services may take to be running (and healthy, if they have a health check), ms. */
    waitTimeoutMs: z.number().int().positive().default(60_000),
    /** Build images for services with `build:` (always with labels; removed on down). */
    build: z.boolean().default(true),
    /** Remove images built for the project on down (`--rmi local`). */
    removeImages: z.boolean().default(true),
    /**
     * Wall-clock limit of the run in ms, enforced by the runner itself. Under a `TaskQueue`
     * prefer the submit option `timeoutMs` (the task then ends `timed_out`; with this one it
     * ends `failed` with an error saying it timed out).
     */
    timeoutMs: z.number().int().positive().optional(),
    /** Grace for stopping containers before killing them, ms. Default: the queue's `killAfterMs`, else 2000. */
    stopGraceMs: z.number().int().min(0).optional(),
    /** Outputs archiving (the workspace is offered to the compose file as `${SMOOTHTASK_WORKSPACE}`). */
    outputs: OutputsSchema.default({ dir: 'out', maxBytes: 256 * 1024 * 1024 }),
  })
  .strict()
  .refine((s) => s.exitFrom === undefined || s.services.length === 0 || s.services.includes(s.exitFrom), {
    message: 'exitFrom must be one of services',
    path: ['exitFrom'],
  });
/** Input type of {@link ComposeTaskSpecSchema}. */
export type ComposeTaskSpec = z.input<typeof ComposeTaskSpecSchema>;
/** Parsed (defaults applied) compose task spec. */
export type ComposeTaskConfig = z.output<typeof ComposeTaskSpecSchema>;
