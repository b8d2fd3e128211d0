/**
 * The procfs backend of the `network` family.
 * @internal
 */
import { isEmptyFilter } from '../family.js';
import { readProcNetTcp, socketInodes } from '../procfs.js';
import { ReaderBase } from '../reader-base.js';
import { TCP_STATES, type NetworkSnapshot, type TcpConnection } from '../schemas.js';
import { matchingProcesses, perProcess } from '../readers-shared.js';

/** procfs `network` reader: /proc/net/tcp{,6} with owners from /proc/<pid>/fd socket inodes. No byte counts. */
export class ProcfsNetworkReader extends ReaderBase<NetworkSnapshot> {
  readonly family = 'network';
  readonly backend = 'procfs' as const;

  protected collect(): NetworkSnapshot {
    const owners = new Map<number, { tgid: number; comm: string }>();
    for (const p of matchingProcesses(this.filter)) for (const ino of socketInodes(p.pid)) owners.set(ino, { tgid: p.pid, comm: p.comm });
    const empty = isEmptyFilter(this.filter);
    const connections: TcpConnection[] = [];
    for (const r of readProcNetTcp()) {
      if (r.state === 10) continue; // listeners are not connections
      const owner = owners.get(r.inode);
      if (!empty && !owner) continue;
      connections.push({
        id: `${r.ipVersion}:${r.inode || `${r.localAddress}:${r.localPort}-${r.remoteAddress}:${r.remotePort}`}`,
        ipVersion: r.ipVersion,
        localAddress: r.localAddress,
        localPort: r.localPort,
        remoteAddress: r.remoteAddress,
        remotePort: r.remotePort,
        state: TCP_STATES[r.state] ?? String(r.state),
        direction: null,
        tgid: owner?.tgid ?? null,
        comm: owner?.comm ?? null,
        bytesSent: null,
        bytesReceived: null,
        retransmits: null,
        closed: false,
        durationNs: null,
      });
    }
    return { family: 'network', backend: 'procfs', timestamp: Date.now(), connections, processes: perProcess(connections) };
  }
}
