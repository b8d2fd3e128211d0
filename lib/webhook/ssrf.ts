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
import { ConfigError } from '../errors/index.js';
import { validate } from '../errors/validate.js';
import { SsrfBlockedError } from './errors.js';

/** Network policy of webhook deliveries. */
export const NetworkPolicySchema = z.object({
  /**
   * Allow the special-purpose ranges ({@link SPECIAL_PURPOSE_RANGES}: loopback, private,
   * link-local, CGNAT, documentation, multicast ...), IPv6 forms embedding such an IPv4
   * address included. Default false.
   */
  allowPrivate: z.boolean().default(false),
  /** Addresses or CIDRs allowed even when private (e.g. `127.0.0.1/32`). An IPv6 form embedding an IPv4 address is matched by that address. */
  allow: z.array(z.string()).default([]),
  /** Addresses or CIDRs always refused (checked first, against the address and against its embedded IPv4 address). */
  block: z.array(z.string()).default([]),
});
/** Network policy of webhook deliveries (input form). */
export type NetworkPolicy = z.input<typeof NetworkPolicySchema>;

/**
 * The ranges the default policy refuses, with why (IANA special-purpose registries, plus the
 * deprecated IPv6 site-local range). IPv6 forms that embed an IPv4 address (IPv4-compatible,
 * IPv4-mapped, IPv4-translated, 6to4, NAT64 `64:ff9b::/96`, Teredo) are judged by that address
 * instead, see {@link embeddedIPv4}; the local-use NAT64 prefix `64:ff9b:1::/48` is refused whole.
 */
export const SPECIAL_PURPOSE_RANGES: ReadonlyArray<readonly [cidr: string, why: string]> = [
  ['0.0.0.0/8', '"this network", unspecified'],
  ['10.0.0.0/8', 'private (RFC 1918)'],
  ['100.64.0.0/10', 'shared address space (CGNAT)'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local (cloud metadata)'],
  ['172.16.0.0/12', 'private (RFC 1918)'],
  ['192.0.0.0/24', 'IETF protocol assignments'],
  ['192.0.2.0/24', 'documentation (TEST-NET-1)'],
  ['192.88.99.0/24', '6to4 relay anycast (deprecated)'],
  ['192.168.0.0/16', 'private (RFC 1918)'],
  ['198.18.0.0/15', 'benchmarking'],
  ['198.51.100.0/24', 'documentation (TEST-NET-2)'],
  ['203.0.113.0/24', 'documentation (TEST-NET-3)'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved, broadcast'],
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['64:ff9b:1::/48', 'local-use NAT64 (RFC 8215): translated inside the local network'],
  ['100::/64', 'discard-only'],
  ['2001:2::/48', 'benchmarking'],
  ['2001:10::/28', 'ORCHID (deprecated)'],
  ['2001:20::/28', 'ORCHIDv2'],
  ['2001:db8::/32', 'documentation'],
  ['3fff::/20', 'documentation (RFC 9637)'],
  ['fc00::/7', 'unique local'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'site-local (deprecated, treated as private)'],
  ['ff00::/8', 'multicast'],
];

function toList(cidrs: readonly string[], what: string): BlockList {
  const bl = new BlockList();
  for (const c of cidrs) {
    const [addr = '', bits, extra] = c.split('/');
    const fam = isIP(addr);
    const n = bits === undefined ? undefined : Number(bits);
    if (fam === 0 || extra !== undefined || (n !== undefined && (!/^\d+$/.test(bits!) || n > (fam === 6 ? 128 : 32)))) {
      throw new ConfigError(`Invalid address or CIDR in the webhook ${what} list: ${JSON.stringify(c)}`, [`${what}: ${c}`]);
    }
    const type = fam === 6 ? 'ipv6' : 'ipv4';
    if (n === undefined) bl.addAddress(addr, type);
    else bl.addSubnet(addr, n, type);
  }
  return bl;
}

const privateList = toList(
  SPECIAL_PURPOSE_RANGES.map(([c]) => c),
  'special-purpose',
);

/** Parses an IPv6 address (zone id ignored, dotted IPv4 tail allowed) into 8 16-bit groups; `undefined` if it is not one. */
function parseIPv6(address: string): number[] | undefined {
  const a = address.split('%')[0]!;
  if (isIP(a) !== 6) return undefined;
  let text = a;
  const tail: number[] = [];
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const b = dotted.slice(1).map(Number);
    tail.push((b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!);
    text = text.slice(0, dotted.index) + '0:0';
  }
  const halves = text.split('::');
  const parse = (h: string): number[] => (h === '' ? [] : h.split(':').map((x) => parseInt(x, 16)));
  const head = parse(halves[0]!);
  const rest = halves.length > 1 ? parse(halves[1]!) : [];
  const groups = halves.length > 1 ? [...head, ...Array<number>(8 - head.length - rest.length).fill(0), ...rest] : head;
  if (groups.length !== 8) return undefined;
  if (tail.length) groups.splice(6, 2, tail[0]!, tail[1]!);
  return groups;
}

const v4 = (hi: number, lo: number): string => `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;

/**
 * The IPv4 addresses an IPv6 address embeds, by the form it has: IPv4-compatible `::a.b.c.d`
 * (`::/96`, but not `::` or `::1`), IPv4-mapped `::ffff:a.b.c.d`, IPv4-translated
 * `::ffff:0:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, 6to4 `2002:AABB:CCDD::/48`, and Teredo
 * `2001:0:SSSS:SSSS:flags:port:CCCC:CCCC` (server, then the client address stored inverted).
 * Empty for every other address (and for IPv4 or invalid input).
 */
export function embeddedIPv4Addresses(address: string): string[] {
  const g = parseIPv6(address);
  if (!g) return [];
  const zero = (from: number, to: number): boolean => g.slice(from, to).every((x) => x === 0);
  if (zero(0, 6) && !(g[6] === 0 && (g[7] === 0 || g[7] === 1))) return [v4(g[6]!, g[7]!)]; // IPv4-compatible
  if (zero(0, 5) && g[5] === 0xffff) return [v4(g[6]!, g[7]!)]; // IPv4-mapped
  if (zero(0, 4) && g[4] === 0xffff && g[5] === 0) return [v4(g[6]!, g[7]!)]; // IPv4-translated (SIIT)
  if (g[0] === 0x64 && g[1] === 0xff9b && zero(2, 6)) return [v4(g[6]!, g[7]!)]; // NAT64 well-known prefix
  if (g[0] === 0x2002) return [v4(g[1]!, g[2]!)]; // 6to4
  if (g[0] === 0x2001 && g[1] === 0) return [v4(g[2]!, g[3]!), v4(g[6]! ^ 0xffff, g[7]! ^ 0xffff)]; // Teredo: server, client
  return [];
}

/** The IPv4 address an IPv6 address embeds (for Teredo: the client's), see {@link embeddedIPv4Addresses}; `undefined` if none. */
export function embeddedIPv4(address: string): string | undefined {
  const all = embeddedIPv4Addresses(address);
  return all[all.length - 1];
}

/** A compiled policy: `allowed(address)`. */
export interface AddressGuard {
  /** Whether connecting to `address` is allowed. */
  allowed(address: string): boolean;
}

/**
 * Compiles a policy. Order: the block list (address or any embedded IPv4 address) refuses;
 * then an address with embedded IPv4 addresses is allowed only if each of them is; then the
 * allow list; then `allowPrivate` or not being in {@link SPECIAL_PURPOSE_RANGES}. Throws
 * `ConfigError` for a malformed address or CIDR.
 */
export function createAddressGuard(policy: NetworkPolicy = {}): AddressGuard {
  const p = validate(NetworkPolicySchema, policy, 'webhook network policy');
  const allow = toList(p.allow, 'allow');
  const block = toList(p.block, 'block');
  const check = (address: string, type: 'ipv4' | 'ipv6'): boolean => {
    if (allow.check(address, type)) return true;
    return p.allowPrivate || !privateList.check(address, type);
  };
  return {
    allowed(address: string): boolean {
      const a = address.split('%')[0]!;
      const fam = isIP(a);
      if (fam === 0) return false;
      if (fam === 4) return !block.check(a, 'ipv4') && check(a, 'ipv4');
      const inner = embeddedIPv4Addresses(a);
      if (block.check(a, 'ipv6') || inner.some((x) => block.check(x, 'ipv4'))) return false;
      if (inner.length) return inner.every((x) => check(x, 'ipv4'));
      return check(a, 'ipv6');
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
