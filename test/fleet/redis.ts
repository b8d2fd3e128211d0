// A real redis-server for a test file: its own process on a free loopback port, no persistence
// unless asked, `noeviction` (what BullMQ needs). Restartable on the same port.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RedisServer {
  url: string;
  /** The CA (the server's self-signed certificate) when started with `tls`. */
  caFile?: string;
  port: number;
  /** The server's pid now (undefined while stopped). */
  readonly pid: number | undefined;
  /** Stops the server (SIGKILL when `hard`). */
  stop(hard?: boolean): Promise<void>;
  /** Starts it again on the same port (with the data it saved, when `persist`). */
  start(): Promise<void>;
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

async function answers(port: number, tls: boolean, password: string | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const c = tls ? tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false }) : connect(port, '127.0.0.1');
    c.once(tls ? 'secureConnect' : 'connect', () => c.write(password ? `AUTH ${password}\r\nPING\r\n` : 'PING\r\n'));
    let got = '';
    c.on('data', (d) => {
      got += d.toString();
      if (got.includes('+PONG') || got.startsWith('-')) {
        c.destroy();
        resolve(got.includes('+PONG'));
      }
    });
    c.once('error', () => resolve(false));
  });
}

/**
 * Starts redis-server; `persist` keeps an append-only file so a restart keeps the jobs; `tls`
 * serves TLS only (a self-signed certificate made here, `caFile`); `password` requires AUTH.
 */
export async function startRedis(o: { persist?: boolean; tls?: boolean; password?: string } = {}): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'st-redis-'));
  const port = await freePort();
  const caFile = join(dir, 'cert.pem');
  const tlsArgs: string[] = [];
  if (o.tls) {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', caFile, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    tlsArgs.push('--port', '0', '--tls-port', String(port), '--tls-cert-file', caFile, '--tls-key-file', join(dir, 'key.pem'), '--tls-ca-cert-file', caFile, '--tls-auth-clients', 'no');
  } else tlsArgs.push('--port', String(port));
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn('redis-server', [...tlsArgs, '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', o.persist ? 'yes' : 'no', '--appendfsync', 'always', '--maxmemory-policy', 'noeviction', '--protected-mode', 'yes', ...(o.password ? ['--requirepass', o.password] : [])], { stdio: 'ignore' });
    for (let i = 0; i < 100; i++) {
      if (await answers(port, !!o.tls, o.password)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`redis-server did not start on port ${port}`);
  };
  const stop = async (hard = false) => {
    const c = child;
    if (!c || c.exitCode !== null) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill(hard ? 'SIGKILL' : 'SIGTERM');
    await gone;
  };
  await start();
  return {
    url: `${o.tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`,
    ...(o.tls ? { caFile } : {}),
    port,
    get pid() {
      return child && child.exitCode === null ? child.pid : undefined;
    },
    stop,
    start,
    close: async () => {
      await stop(true);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
