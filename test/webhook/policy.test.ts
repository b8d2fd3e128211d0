// The webhook address policy, table-driven (issue 12 item 9): every special-purpose range is
// refused by default, and IPv6 forms that embed an IPv4 address are judged by that address.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JsonStore } from 'smoothtask/store';
import { createAddressGuard, embeddedIPv4, generateWebhookSecret, SsrfBlockedError, WebhookDispatcher } from 'smoothtask/webhook';
import { ConfigError } from '../../lib/errors/index.js';

// [address, why]: refused by the default policy (public addresses only).
const REFUSED: Array<[string, string]> = [
  ['0.0.0.0', 'unspecified'],
  ['0.1.2.3', '"this network" 0/8'],
  ['10.0.0.1', 'RFC 1918'],
  ['100.64.0.1', 'CGNAT'],
  ['127.0.0.1', 'loopback'],
  ['127.255.255.254', 'loopback'],
  ['169.254.169.254', 'link-local (cloud metadata)'],
  ['172.16.0.1', 'RFC 1918'],
  ['172.31.255.255', 'RFC 1918'],
  ['192.0.0.8', 'IETF protocol assignments'],
  ['192.0.2.1', 'documentation TEST-NET-1'],
  ['192.88.99.1', '6to4 relay anycast (deprecated)'],
  ['192.168.1.1', 'RFC 1918'],
  ['198.18.0.1', 'benchmarking'],
  ['198.51.100.1', 'documentation TEST-NET-2'],
  ['203.0.113.1', 'documentation TEST-NET-3'],
  ['224.0.0.1', 'multicast'],
  ['239.255.255.250', 'multicast'],
  ['240.0.0.1', 'reserved'],
  ['255.255.255.255', 'broadcast'],
  ['::', 'unspecified'],
  ['::1', 'loopback'],
  ['fc00::1', 'unique local'],
  ['fdff:ffff::1', 'unique local'],
  ['fe80::1', 'link-local'],
  ['fe80::1%eth0', 'link-local with zone'],
  ['febf:ffff::1', 'link-local'],
  ['fec0::1', 'site-local (deprecated)'],
  ['feff::1', 'site-local (deprecated)'],
  ['ff02::1', 'multicast'],
  ['ff0e::1', 'multicast'],
  ['2001:db8::1', 'documentation'],
  ['3fff::1', 'documentation (RFC 9637)'],
  ['100::1', 'discard-only'],
  ['2001:2::1', 'benchmarking'],
  ['2001:10::1', 'ORCHID'],
  ['2001:20::1', 'ORCHIDv2'],
  ['::7f00:1', 'IPv4-compatible 127.0.0.1'],
  ['::127.0.0.1', 'IPv4-compatible 127.0.0.1 (dotted)'],
  ['::a00:1', 'IPv4-compatible 10.0.0.1'],
  ['::ffff:7f00:1', 'IPv4-mapped 127.0.0.1'],
  ['::ffff:127.0.0.1', 'IPv4-mapped 127.0.0.1 (dotted)'],
  ['::ffff:a9fe:a9fe', 'IPv4-mapped 169.254.169.254'],
  ['::ffff:0.0.0.0', 'IPv4-mapped 0.0.0.0'],
  ['::ffff:0:7f00:1', 'IPv4-translated 127.0.0.1'],
  ['::ffff:0:127.0.0.1', 'IPv4-translated 127.0.0.1 (dotted)'],
  ['::ffff:0:c0a8:101', 'IPv4-translated 192.168.1.1'],
  ['2002:7f00:1::', '6to4 of 127.0.0.1'],
  ['2002:7f00:1:1234::1', '6to4 of 127.0.0.1, with subnet and host'],
  ['2002:a9fe:a9fe::1', '6to4 of 169.254.169.254'],
  ['2002:c0a8:101::1', '6to4 of 192.168.1.1'],
  ['64:ff9b::7f00:1', 'NAT64 of 127.0.0.1'],
  ['64:ff9b::127.0.0.1', 'NAT64 of 127.0.0.1 (dotted)'],
  ['64:ff9b::a9fe:a9fe', 'NAT64 of 169.254.169.254'],
  ['64:ff9b:1::1', 'local-use NAT64 (RFC 8215), refused whole'],
  ['64:ff9b:1:7f00:1::', 'local-use NAT64 (RFC 8215), refused whole'],
  ['64:ff9b:1:808:8:800::', 'local-use NAT64 (RFC 8215) even of a public address'],
  ['2001:0:4136:e378:8000:63bf:80ff:fffe', 'Teredo, client 127.0.0.1'],
  ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'Teredo, client 192.0.2.45 (RFC 4380 example)'],
  ['2001:0:a00:1:8000:63bf:f7f7:f7f7', 'Teredo, server 10.0.0.1'],
  ['not-an-ip', 'not an address'],
  ['', 'empty'],
];

// Public: allowed by the default policy.
const ALLOWED: Array<[string, string]> = [
  ['8.8.8.8', 'public IPv4'],
  ['1.1.1.1', 'public IPv4'],
  ['2606:4700::1111', 'public IPv6'],
  ['2a00:1450:4001::1', 'public IPv6'],
  ['::ffff:8.8.8.8', 'IPv4-mapped public'],
  ['::ffff:808:808', 'IPv4-mapped public (hex)'],
  ['::ffff:0:808:808', 'IPv4-translated public'],
  ['::808:808', 'IPv4-compatible public'],
  ['2002:808:808::1', '6to4 of a public address'],
  ['64:ff9b::808:808', 'NAT64 of a public address'],
  ['2001:0:4136:e378:8000:63bf:f7f7:f7f7', 'Teredo, public server and client 8.8.8.8'],
];

describe('webhook address policy (default: public only)', () => {
  const g = createAddressGuard();
  it.each(REFUSED)('refuses %s (%s)', (addr) => {
    expect(g.allowed(addr)).toBe(false);
  });
  it.each(ALLOWED)('allows %s (%s)', (addr) => {
    expect(g.allowed(addr)).toBe(true);
  });
});

describe('embedded IPv4 extraction', () => {
  it.each([
    ['::7f00:1', '127.0.0.1'],
    ['::ffff:7f00:1', '127.0.0.1'],
    ['::ffff:0:7f00:1', '127.0.0.1'],
    ['2002:c0a8:101::1', '192.168.1.1'],
    ['64:ff9b::a9fe:a9fe', '169.254.169.254'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', '192.0.2.45'],
    ['2606:4700::1111', undefined],
    ['::1', undefined],
    ['::', undefined],
    ['8.8.8.8', undefined],
  ])('%s -> %s', (v6, v4) => {
    expect(embeddedIPv4(v6)).toEqual(v4 === undefined ? undefined : v4);
  });
});

describe('policy options apply to the embedded IPv4 too', () => {
  it('allow lists match the embedded address; block lists match either form', () => {
    const loop = createAddressGuard({ allow: ['127.0.0.1/32'] });
    for (const a of ['127.0.0.1', '::ffff:7f00:1', '::ffff:127.0.0.1', '64:ff9b::7f00:1']) expect(loop.allowed(a), a).toBe(true);
    for (const a of ['127.0.0.2', '::ffff:7f00:2', '::1']) expect(loop.allowed(a), a).toBe(false);
    const block = createAddressGuard({ block: ['8.8.8.8', '2606:4700::/32'] });
    for (const a of ['8.8.8.8', '::ffff:808:808', '64:ff9b::808:808', '2002:808:808::1', '2606:4700::1111']) expect(block.allowed(a), a).toBe(false);
    expect(block.allowed('1.1.1.1')).toBe(true);
  });

  it('allowPrivate opens the private ranges, embedded forms included; block still wins', () => {
    const p = createAddressGuard({ allowPrivate: true });
    for (const a of ['10.0.0.1', '::1', 'fec0::1', '::ffff:7f00:1', '2002:7f00:1::']) expect(p.allowed(a), a).toBe(true);
    expect(createAddressGuard({ allowPrivate: true, block: ['10.0.0.0/8'] }).allowed('::ffff:a00:1')).toBe(false);
  });

  it('a malformed CIDR in the policy is a ConfigError', () => {
    expect(() => createAddressGuard({ allow: ['nope/8'] })).toThrow(ConfigError);
    expect(() => createAddressGuard({ block: ['10.0.0.0/33'] })).toThrow(ConfigError);
  });
});

describe('addEndpoint refuses an IP-literal URL outside the policy', () => {
  let root: string;
  let d: WebhookDispatcher;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'st-wh-policy-'));
    d = await WebhookDispatcher.open({ store: await JsonStore.open({ dir: root }) });
  });
  afterAll(async () => {
    await d.close();
    await rm(root, { recursive: true, force: true });
  });
  it.each([
    'http://127.0.0.1/h',
    'http://0x7f.1/h', // WHATWG URL normalizes to 127.0.0.1
    'http://2130706433/h',
    'http://169.254.169.254/latest/meta-data',
    'http://[::1]/h',
    'http://[::7f00:1]/h',
    'http://[::ffff:127.0.0.1]/h',
    'http://[::ffff:0:7f00:1]/h',
    'http://[2002:7f00:1::]/h',
    'http://[64:ff9b::7f00:1]/h',
    'http://[64:ff9b:1::1]/h',
    'https://[fec0::1]/h',
    'https://[fd00::1]/h',
    'http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/h',
  ])('%s', async (url) => {
    await expect(d.addEndpoint({ url })).rejects.toBeInstanceOf(SsrfBlockedError);
    expect(d.endpoints().map((e) => e.url)).not.toContain(url);
  });
  it('accepts public literals and host names (names are checked at each connect)', async () => {
    for (const url of ['http://8.8.8.8/h', 'http://[2606:4700::1111]/h', 'http://[64:ff9b::808:808]/h', 'http://localhost:1/h']) {
      await d.addEndpoint({ url });
    }
    expect(d.endpoints()).toHaveLength(4);
  });
  it('refuses a secret that cannot sign (ConfigError), instead of failing every delivery', async () => {
    await expect(d.addEndpoint({ url: 'http://8.8.8.8/h', secret: 'short-secret' })).rejects.toBeInstanceOf(ConfigError);
    await expect(d.addEndpoint({ url: 'http://8.8.8.8/h', secret: generateWebhookSecret().slice(6) })).resolves.toBeTruthy();
  });
});
