/**
 * Attachments: {@link BpfLink} (any attach type) and {@link BpfIterLink} (BPF iterators).
 * A link owns the fds that keep its program attached (a bpf_link fd and/or perf event fds);
 * closing them detaches the program.
 * @module
 */
import diagnostics_channel from 'node:diagnostics_channel';
import { ClosedError, fromNative } from './errors.js';
import { dp } from './map.js';
import type { IterLink, Link } from './types.js';

/** Published on `smoothtask:ebpf:attach` when a link is made or closed. */
export interface AttachEvent {
  program: string;
  type: string;
  /** `attach` or `detach`. */
  action: 'attach' | 'detach';
}

/** diagnostics_channel on which attachments are reported ({@link AttachEvent}). */
export const attachChannel = diagnostics_channel.channel('smoothtask:ebpf:attach');

const registry = new FinalizationRegistry<number[]>((fds) => {
  for (const fd of fds) {
    try {
      dp().closeFd(fd);
    } catch {
      /* addon gone at teardown */
    }
  }
});

/**
 * One attachment of one program. `close()` detaches (idempotent); the finalizer detaches a
 * link that was dropped without closing, and the addon closes leftovers when the Node
 * environment ends (worker threads). Links do not survive the process unless pinned.
 */
export class BpfLink implements Link {
  /** The attach type used (`tracepoint`, `raw_tracepoint`, `tp_btf`, `uprobe`, `perf_event`, `iterator`, `cgroup`, ...). */
  readonly type: string;
  /** Name of the attached program. */
  readonly program: string;
  /** What it is attached to, for messages (`syscalls/sys_enter_getpid`, `/bin/x:func`, ...). */
  readonly target: string;
  #fds: number[];

  /** @internal Takes ownership of `fds` (link fd first when there is one). */
  constructor(type: string, program: string, target: string, fds: number[]) {
    this.type = type;
    this.program = program;
    this.target = target;
    this.#fds = fds;
    registry.register(this, fds, this);
    if (attachChannel.hasSubscribers) attachChannel.publish({ program, type, action: 'attach' } satisfies AttachEvent);
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#fds.length === 0;
  }

  /** The fds held (bpf link fd first when there is one); empty once closed. @internal */
  get fds(): readonly number[] {
    return this.#fds;
  }

  /** @internal */
  protected live(): number[] {
    if (this.#fds.length === 0) throw new ClosedError(`link ${this.type} ${this.target}`);
    return this.#fds;
  }

  /**
   * Pins the bpf_link at `path` on bpffs, so the program stays attached after this process
   * exits (remove the pin file to detach). Links made through ioctl (old kernels) cannot be pinned.
   */
  pin(path: string): void {
    const fd = this.live()[0] as number;
    try {
      dp().linkPin(fd, path);
    } catch (e) {
      throw fromNative(e, new Error());
    }
  }

  /** Detaches; idempotent. */
  close(): void {
    if (this.#fds.length === 0) return;
    const fds = this.#fds;
    this.#fds = [];
    registry.unregister(this);
    for (const fd of fds) dp().closeFd(fd);
    if (attachChannel.hasSubscribers) attachChannel.publish({ program: this.program, type: this.type, action: 'detach' } satisfies AttachEvent);
  }

  /** Same as {@link close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * A BPF iterator link: each {@link read} runs the iterator once, off the main thread;
 * {@link readSync} runs it on the calling thread.
 */
export class BpfIterLink extends BpfLink implements IterLink {
  /** Runs the iterator and resolves with everything it wrote. */
  async read(): Promise<Buffer> {
    const fd = this.live()[0] as number;
    const stack = new Error();
    try {
      return await dp().iterRead(fd);
    } catch (e) {
      throw fromNative(e, stack);
    }
  }

  /**
   * Runs the iterator on the calling thread and returns everything it wrote. For a walk known
   * to be short (a few hundred tasks take tens of microseconds): it saves the hand-off to a
   * libuv worker and back, which costs more than such a walk. Use {@link read} otherwise.
   */
  readSync(): Buffer {
    const fd = this.live()[0] as number;
    try {
      return dp().iterReadSync(fd);
    } catch (e) {
      throw fromNative(e, new Error());
    }
  }

  /** Runs the iterator and decodes its output as UTF-8 text (what `BPF_SEQ_PRINTF` writes). */
  async readText(): Promise<string> {
    return (await this.read()).toString('utf8');
  }
}
