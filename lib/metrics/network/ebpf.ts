/**
 * The eBPF backend of the `network` family (net.bpf.o).
 * @internal
 */
import { u32, u64, u64n } from '../../ebpf/codec.js';
import type { BpfMap } from '../../ebpf/map.js';
import type { RingBufferLike } from '../../ebpf/types.js';
import { BpfReaderBase, monoToEpochMs, monotonicNowNs, type BpfReaderOptions } from '../bpf-base.js';
import { stTcpConn, stTcpEvent, TCP_FLAGS } from '../bpf-structs.js';
import { formatIpv6 } from '../procfs.js';
import { TCP_STATES, type NetworkSnapshot, type TcpConnection, type TcpEvent } from '../schemas.js';
import { ConfigError } from '../../errors/index.js';
import { mapEventBatches, mapEvents, perProcess, WritesGate, type Decoded } from '../readers-shared.js';

function connOf(key: bigint | number, c: Decoded<typeof stTcpConn>, now: number): TcpConnection {
  const v6 = c.family === 10;
  const addr = (b: Buffer): string => (v6 ? formatIpv6(b) : `${b[0]}.${b[1]}.${b[2]}.${b[3]}`);
  const closed = (c.flags & TCP_FLAGS.closed) !== 0;
  const owner = (c.flags & TCP_FLAGS.owner) !== 0;
  return {
    id: key.toString(16),
    ipVersion: v6 ? 6 : 4,
    localAddress: addr(c.saddr),
    localPort: c.sport,
    remoteAddress: addr(c.daddr),
    remotePort: c.dport,
    state: TCP_STATES[c.state] ?? String(c.state),
    direction: c.flags & TCP_FLAGS.active ? 'active' : c.flags & TCP_FLAGS.passive ? 'passive' : null,
    tgid: owner ? c.tgid : null,
    comm: owner ? c.comm : null,
    bytesSent: c.bytes_sent,
    bytesReceived: c.bytes_received,
    retransmits: c.retransmits,
    closed,
    durationNs: c.start_ns ? (closed ? c.end_ns : now) - c.start_ns : null,
  };
}

/** eBPF `network` reader over bpf/net.bpf.c. Closed connections are reported once, then removed. */
export class EbpfNetworkReader extends BpfReaderBase<NetworkSnapshot, TcpEvent> {
  readonly family = 'network';
  readonly #conns: BpfMap<bigint, Decoded<typeof stTcpConn>>;
  /** The entries of tcp_conns as last walked (closed ones dropped once reported), walked again only after a program wrote to it. */
  readonly #walk: WritesGate<Array<[bigint, Decoded<typeof stTcpConn>]>>;
  #rb: RingBufferLike<Decoded<typeof stTcpEvent>> | undefined;

  /** Attaches the object's programs and opens its maps; the reader owns `o.object`. */
  constructor(o: BpfReaderOptions) {
    super(o);
    this.#conns = this.map('tcp_conns', { key: u64, value: stTcpConn });
    this.#walk = new WritesGate(this.map('st_writes', { key: u32, value: u64n }));
  }

  /**
   * Walks tcp_conns only when a program wrote to it since the last read (no connection opened,
   * changed state, moved a byte or retransmitted: the write counter stood still); otherwise the
   * entries of the last walk again (durations still run to now). A closed connection is
   * reported once, then deleted from the map and dropped from the kept entries.
   */
  protected collect(): NetworkSnapshot {
    const now = monotonicNowNs();
    const entries = this.#walk.get(() => [...this.#conns.readAll()]);
    const connections: TcpConnection[] = [];
    const open: Array<[bigint, Decoded<typeof stTcpConn>]> = [];
    for (let i = 0; i < entries.length; i++) {
      const [key, c] = entries[i]!;
      const conn = connOf(key, c, now);
      connections.push(conn);
      if (conn.closed) this.#conns.delete(key);
      else open.push(entries[i]!);
    }
    this.#walk.keep(open);
    return { family: 'network', backend: 'ebpf', timestamp: Date.now(), connections, processes: perProcess(connections) };
  }

  /** TCP open/close/state events (needs the reader opened with `events: true`). */
  events(options: { signal?: AbortSignal } = {}): AsyncIterable<TcpEvent> {
    return mapEvents(this.#ring(), toTcpEvent, options.signal, (d) => this.eventsActive(d));
  }

  /** The same events in batches as the ring buffer delivered them (no promise per event). */
  eventBatches(options: { signal?: AbortSignal } = {}): AsyncIterable<TcpEvent[]> {
    return mapEventBatches(this.#ring(), toTcpEvent, options.signal, (d) => this.eventsActive(d));
  }

  #ring(): RingBufferLike<Decoded<typeof stTcpEvent>> {
    this.check();
    if (!this.wantEvents) throw new ConfigError('network events were not requested: open the reader with events: true', ['events: false']);
    return (this.#rb ??= this.obj.ringBuffer('tcp_events', { codec: stTcpEvent, reuseBuffers: true }));
  }

  protected override onClose(): void {
    this.#rb?.close();
    super.onClose();
  }
}

const TCP_EVENT_TYPES = ['', 'open', 'close', 'state'] as const;
function toTcpEvent(r: Decoded<typeof stTcpEvent>): TcpEvent | null {
  const t = TCP_EVENT_TYPES[r.type];
  if (!t) return null;
  return {
    type: t,
    timestamp: monoToEpochMs(r.ts_ns),
    oldState: TCP_STATES[r.oldstate] ?? String(r.oldstate),
    newState: TCP_STATES[r.newstate] ?? String(r.newstate),
    connection: connOf(r.sock, r.conn, r.ts_ns),
  };
}
