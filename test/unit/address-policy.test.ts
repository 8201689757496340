import { describe, expect, it } from 'vitest';
import {
  AddressPolicy,
  AddressRefused,
  forbiddenRange,
  HostUnresolved,
  parseAllowList,
  type Resolver,
} from '../../src/net/address-policy.js';

const REFUSED: Record<string, string> = {
  '127.0.0.1': 'loopback',
  '127.255.0.9': 'loopback',
  '0.0.0.0': 'unspecified',
  '10.1.2.3': 'private',
  '172.16.0.1': 'private',
  '172.31.255.254': 'private',
  '192.168.1.1': 'private',
  '100.64.0.1': 'private (shared CGNAT)',
  '169.254.169.254': 'link-local (cloud metadata)',
  '224.0.0.1': 'multicast',
  '255.255.255.255': 'reserved (incl. broadcast)',
  '::': 'unspecified',
  '::1': 'loopback',
  'fd00::1': 'private (unique local)',
  'fc12:3456::1': 'private (unique local)',
  'fe80::1': 'link-local',
  'ff02::1': 'multicast',
  // IPv6 forms carrying a refused IPv4 address.
  '::ffff:127.0.0.1': 'loopback',
  '::ffff:7f00:1': 'loopback',
  '::ffff:169.254.169.254': 'link-local (cloud metadata)',
  '::ffff:a9fe:a9fe': 'link-local (cloud metadata)',
  '::127.0.0.1': 'loopback',
  '64:ff9b::a9fe:a9fe': 'link-local (cloud metadata)',
  '2002:7f00:1::': 'loopback',
  '2002:c0a8:101::1': 'private',
};

const PUBLIC = ['93.184.216.34', '1.1.1.1', '172.32.0.1', '100.128.0.1', '2606:4700::1111', '::ffff:8.8.8.8'];

describe('which addresses a user-given URL may reach', () => {
  it('refuses loopback, private, CGNAT, link-local, multicast, unspecified and their IPv6 forms', () => {
    for (const [addr, why] of Object.entries(REFUSED)) expect(forbiddenRange(addr), addr).toBe(why);
  });

  it('lets public addresses through', () => {
    for (const addr of PUBLIC) expect(forbiddenRange(addr), addr).toBeNull();
  });
});

describe('NETWORK_ALLOW_PRIVATE', () => {
  it('takes CIDRs, single addresses and host names, comma or space separated', () => {
    expect(parseAllowList('10.0.0.0/8, 127.0.0.1 fd00::/8,Hooks.Internal.')).toEqual({
      entries: [
        { kind: 'cidr', value: '10.0.0.0/8' },
        { kind: 'cidr', value: '127.0.0.1/32' },
        { kind: 'cidr', value: 'fd00::/8' },
        { kind: 'host', value: 'hooks.internal' },
      ],
    });
    expect(parseAllowList('')).toEqual({ entries: [] });
  });

  it('names the entry it cannot read', () => {
    expect(parseAllowList('10.0.0.0/33')).toEqual({
      error: '"10.0.0.0/33" is not a CIDR: the prefix after / must be 0 to 32',
    });
    expect('error' in parseAllowList('http://x/')).toBe(true);
    expect('error' in parseAllowList('host/8')).toBe(true);
  });
});

describe('AddressPolicy.resolve', () => {
  const resolver =
    (table: Record<string, string[]>): Resolver =>
    async (host) => {
      const got = table[host];
      if (!got) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
      return got.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
    };

  it('checks what a name resolves to, not the name', async () => {
    const policy = new AddressPolicy([], resolver({ 'innocent.example': ['127.0.0.1'] }));
    const err = await policy.resolve('innocent.example').catch((e) => e);
    expect(err).toBeInstanceOf(AddressRefused);
    expect(err.message).toBe(
      'refused to connect to innocent.example (127.0.0.1): a loopback address; an operator can allow it in NETWORK_ALLOW_PRIVATE',
    );
  });

  it('checks IP literals in URLs, IPv6 in brackets too', async () => {
    const policy = new AddressPolicy([], resolver({}));
    await expect(policy.resolve('[::ffff:169.254.169.254]')).rejects.toThrow(/link-local/);
    await expect(policy.resolve('169.254.169.254')).rejects.toThrow(/link-local/);
  });

  it('returns the allowed address the caller must connect to, skipping refused ones', async () => {
    const policy = new AddressPolicy([], resolver({ 'mixed.example': ['10.0.0.5', '93.184.216.34'] }));
    expect(await policy.resolve('mixed.example')).toEqual({ address: '93.184.216.34', family: 4 });
  });

  it('admits what the operator lists, by CIDR or by host name, and nothing next to it', async () => {
    const { entries } = parseAllowList('10.1.0.0/16, hooks.internal') as { entries: never[] };
    const policy = new AddressPolicy(
      entries,
      resolver({ 'hooks.internal': ['192.168.7.7'], 'other.internal': ['192.168.7.7'] }),
    );
    expect((await policy.resolve('10.1.2.3')).address).toBe('10.1.2.3');
    expect((await policy.resolve('hooks.internal')).address).toBe('192.168.7.7');
    await expect(policy.resolve('10.2.0.1')).rejects.toBeInstanceOf(AddressRefused);
    await expect(policy.resolve('other.internal')).rejects.toBeInstanceOf(AddressRefused);
  });

  it('says a name does not resolve without quoting the resolver', async () => {
    const err = await new AddressPolicy([], resolver({})).resolve('nowhere.example').catch((e) => e);
    expect(err).toBeInstanceOf(HostUnresolved);
    expect(err.message).toBe('the host name nowhere.example does not resolve');
  });
});
