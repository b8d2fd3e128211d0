/**
 * SSRF guard. The check runs in the connect-time DNS lookup (a custom `lookup` passed to
 * the HTTP request), so the address checked is the address connected to: a DNS answer that
 * changes between a pre-check and the connect (rebinding) cannot slip through. IP literals,
 * which Node connects to without a lookup, are checked before the request.
 * @module
 */
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { z } from 'zod';
import { SsrfBlockedError } from './errors.js';

/** Network policy of webhook deliveries. */
export const NetworkPolicySchema = z.object({
  /** Allow loopback, private (RFC 1918, ULA), link-local, CGNAT and unspecified addresses. Default false. */
  allowPrivate: z.boolean().default(false),
  /** Addresses or CIDRs allowed even when private (e.g. `127.0.0.1/32`). */
  allow: z.array(z.string()).default([]),
  /** Addresses or CIDRs always refused (checked first). */
  block: z.array(z.string()).default([]),
});
/** Network policy of webhook deliveries (input form). */
export type NetworkPolicy = z.input<typeof NetworkPolicySchema>;

const PRIVATE_V4 = ['0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12', '192.0.0.0/24', '192.168.0.0/16', '198.18.0.0/15', '224.0.0.0/4', '240.0.0.0/4'];
const PRIVATE_V6 = ['::/128', '::1/128', 'fc00::/7', 'fe80::/10', 'ff00::/8', '64:ff9b::/96'];

function toList(cidrs: string[]): BlockList {
  const bl = new BlockList();
  for (const c of cidrs) {
    const [addr, bits] = c.split('/');
    const type = isIP(addr ?? '') === 6 ? 'ipv6' : 'ipv4';
    if (!addr || isIP(addr) === 0) throw new Error(`Invalid address or CIDR: ${c}`);
    if (bits === undefined) bl.addAddress(addr, type);
    else bl.addSubnet(addr, Number(bits), type);
  }
  return bl;
}

const privateList = toList([...PRIVATE_V4, ...PRIVATE_V6]);

/** A compiled policy: `allowed(address)`. */
export interface AddressGuard {
  /** Whether connecting to `address` is allowed. */
  allowed(address: string): boolean;
}

/** Compiles a policy. */
export function createAddressGuard(policy: NetworkPolicy = {}): AddressGuard {
  const p = NetworkPolicySchema.parse(policy);
  const allow = toList(p.allow);
  const block = toList(p.block);
  const check = (address: string, type: 'ipv4' | 'ipv6'): boolean => {
    if (block.check(address, type)) return false;
    if (allow.check(address, type)) return true;
    return p.allowPrivate || !privateList.check(address, type);
  };
  return {
    allowed(address: string): boolean {
      const fam = isIP(address);
      if (fam === 0) return false;
      if (fam === 6) {
        // IPv4-mapped IPv6 (::ffff:a.b.c.d) is judged as the IPv4 address.
        const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
        if (m) return check(m[1]!, 'ipv4');
        return check(address, 'ipv6');
      }
      return check(address, 'ipv4');
    },
  };
}

/** Callback of a `dns.lookup`-style function. */
export type LookupCb = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** A `lookup` function for `http.request`/`net.connect` that refuses blocked addresses. */
export function guardedLookup(guard: AddressGuard): (hostname: string, options: LookupOptions, cb: LookupCb) => void {
  return (hostname, options, cb) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return cb(err, options.all ? [] : '', undefined);
      const list = addresses as LookupAddress[];
      const bad = list.find((a) => !guard.allowed(a.address));
      if (bad || list.length === 0) return cb(new SsrfBlockedError(hostname, bad?.address ?? '(none)') as unknown as NodeJS.ErrnoException, options.all ? [] : '', undefined);
      if (options.all) return cb(null, list);
      const first = list[0]!;
      cb(null, first.address, first.family);
    });
  };
}

/** Throws {@link SsrfBlockedError} if `hostname` is an IP literal the guard refuses (Node skips the lookup for literals). */
export function checkLiteralHost(guard: AddressGuard, hostname: string): void {
  const h = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname;
  if (isIP(h) !== 0 && !guard.allowed(h)) throw new SsrfBlockedError(hostname, h);
}
