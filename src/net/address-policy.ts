import { lookup as dnsLookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

/**
 * Which addresses the server may open a connection to on a user's behalf (webhooks, and the
 * sandbox's egress proxy). A user-given URL must never reach the host itself, the operator's
 * network or a cloud metadata service, so every address a name resolves to is checked against the
 * ranges below, unless the operator lists it (or its host name) in NETWORK_ALLOW_PRIVATE.
 */

/** An IPv4 range and why it is refused. */
const V4_RANGES: ReadonlyArray<[string, number, string]> = [
  ['0.0.0.0', 8, 'unspecified'],
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'private (shared CGNAT)'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local (cloud metadata)'],
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'reserved'],
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'reserved'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved (incl. broadcast)'],
];

const V6_RANGES: ReadonlyArray<[string, number, string]> = [
  ['::', 128, 'unspecified'],
  ['::1', 128, 'loopback'],
  ['fc00::', 7, 'private (unique local)'],
  ['fe80::', 10, 'link-local'],
  ['fec0::', 10, 'site-local'],
  ['ff00::', 8, 'multicast'],
  ['100::', 64, 'reserved (discard)'],
];

/**
 * IPv6 forms that carry an IPv4 address inside (IPv4-compatible ::a.b.c.d, NAT64 64:ff9b::/96,
 * 6to4 2002::/16): each refused IPv4 range is refused in them too. IPv4-mapped (::ffff:a.b.c.d)
 * needs no entry: BlockList matches it against the IPv4 rules itself.
 */
const V4_IN_V6: ReadonlyArray<{ wrap: (v4: number) => string; extra: number }> = [
  { wrap: (v4) => `::${hex32(v4)}`, extra: 96 },
  { wrap: (v4) => `64:ff9b::${hex32(v4)}`, extra: 96 },
  { wrap: (v4) => `2002:${hex32(v4)}::`, extra: 16 },
];

function hex32(v4: number): string {
  return `${((v4 >>> 16) & 0xffff).toString(16)}:${(v4 & 0xffff).toString(16)}`;
}

function v4ToInt(a: string): number {
  return a.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

/**
 * One BlockList per reason, so that a refusal can say what kind of address it met. IPv6's own
 * ranges come first: ::1 is loopback, though it also lies inside ::0.0.0.0/104 (compatible form).
 */
const DENY: ReadonlyArray<{ reason: string; list: BlockList }> = buildDenyLists();

function buildDenyLists(): { reason: string; list: BlockList }[] {
  const out: { reason: string; list: BlockList }[] = [];
  for (const [net, prefix, reason] of V6_RANGES) {
    const list = new BlockList();
    list.addSubnet(net, prefix, 'ipv6');
    out.push({ reason, list });
  }
  for (const [net, prefix, reason] of V4_RANGES) {
    const list = new BlockList();
    list.addSubnet(net, prefix, 'ipv4');
    for (const form of V4_IN_V6) list.addSubnet(form.wrap(v4ToInt(net)), form.extra + prefix, 'ipv6');
    out.push({ reason, list });
  }
  return out;
}

/** Why an address may not be reached, or null when it is a public address. */
export function forbiddenRange(address: string): string | null {
  const family = isIP(address);
  if (family === 0) return 'not an IP address';
  const type = family === 4 ? 'ipv4' : 'ipv6';
  for (const { reason, list } of DENY) if (list.check(address, type)) return reason;
  return null;
}

/** The host part of a URL as a bare name or address: no IPv6 brackets, no trailing dot, lower case. */
export function bareHost(hostname: string): string {
  return hostname
    .replace(/^\[(.*)\]$/, '$1')
    .replace(/\.$/, '')
    .toLowerCase();
}

export interface AllowEntry {
  kind: 'cidr' | 'host';
  value: string;
}

const HOST_NAME =
  /^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/**
 * Parses NETWORK_ALLOW_PRIVATE: comma- or space-separated CIDRs (10.0.0.0/8, fd00::/8), single
 * addresses (127.0.0.1) and host names (hooks.internal). Returns the entries or the first bad one.
 */
export function parseAllowList(raw: string): { entries: AllowEntry[] } | { error: string } {
  const entries: AllowEntry[] = [];
  for (const item of raw.split(/[\s,]+/).filter(Boolean)) {
    const [addr, prefixText, ...rest] = item.split('/');
    const family = isIP(bareHost(addr ?? ''));
    if (family !== 0) {
      const max = family === 4 ? 32 : 128;
      const prefix = prefixText === undefined ? max : Number(prefixText);
      if (rest.length > 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > max) {
        return { error: `"${item}" is not a CIDR: the prefix after / must be 0 to ${max}` };
      }
      entries.push({ kind: 'cidr', value: `${bareHost(addr!)}/${prefix}` });
    } else if (prefixText === undefined && HOST_NAME.test(bareHost(item))) {
      entries.push({ kind: 'host', value: bareHost(item) });
    } else {
      return { error: `"${item}" is neither an address, a CIDR (10.0.0.0/8) nor a host name` };
    }
  }
  return { entries };
}

/** A connection the policy refused. The message names the host, the kind of address and the setting. */
export class AddressRefused extends Error {
  constructor(
    readonly host: string,
    readonly address: string,
    readonly range: string,
  ) {
    const shown = host === address ? address : `${host} (${address})`;
    super(
      `refused to connect to ${shown}: a ${range} address; an operator can allow it in NETWORK_ALLOW_PRIVATE`,
    );
    this.name = 'AddressRefused';
  }
}

/** A name that does not resolve. Said the same way whatever the resolver's error was. */
export class HostUnresolved extends Error {
  constructor(readonly host: string) {
    super(`the host name ${host} does not resolve`);
    this.name = 'HostUnresolved';
  }
}

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** How names become addresses; tests give their own, everything else uses the system resolver. */
export type Resolver = (host: string) => Promise<ResolvedAddress[]>;

export const systemResolver: Resolver = async (host) => {
  const all = await dnsLookup(host, { all: true, verbatim: true });
  return all.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
};

export class AddressPolicy {
  private readonly allowedNets = new BlockList();
  private readonly allowedHosts = new Set<string>();

  constructor(
    allow: readonly AllowEntry[] = [],
    private readonly resolver: Resolver = systemResolver,
    /**
     * Addresses of this host, refused like private ones (the egress proxy's: a public address of
     * the worker would otherwise reach its own services). Read at each check: interfaces change.
     */
    private readonly ownAddresses?: () => Iterable<string>,
  ) {
    for (const e of allow) {
      if (e.kind === 'host') {
        this.allowedHosts.add(e.value);
        continue;
      }
      const [net, prefix] = e.value.split('/') as [string, string];
      this.allowedNets.addSubnet(net, Number(prefix), isIP(net) === 4 ? 'ipv4' : 'ipv6');
    }
  }

  /** Why the address may not be reached from this host name, or null when it may. */
  refusal(host: string, address: string): string | null {
    const range = forbiddenRange(address) ?? this.ownRange(address);
    if (range === null) return null;
    if (this.allowedHosts.has(bareHost(host))) return null;
    if (this.allowedNets.check(address, isIP(address) === 4 ? 'ipv4' : 'ipv6')) return null;
    return range;
  }

  private ownRange(address: string): string | null {
    if (!this.ownAddresses) return null;
    const bare = address.toLowerCase().replace(/^::ffff:(?=\d+\.)/, '');
    for (const own of this.ownAddresses())
      if (own.toLowerCase() === bare) return "host-local (this worker's own)";
    return null;
  }

  /**
   * Resolves a URL's host once and returns the address to connect to: the caller connects to that
   * address and no other, so a name cannot resolve to a public address for the check and to a
   * private one for the connection. Every resolved address is checked; the first allowed one wins.
   */
  async resolve(hostname: string): Promise<ResolvedAddress> {
    const host = bareHost(hostname);
    const literal = isIP(host);
    let addresses: ResolvedAddress[];
    if (literal !== 0) {
      addresses = [{ address: host, family: literal === 4 ? 4 : 6 }];
    } else {
      try {
        addresses = await this.resolver(host);
      } catch {
        throw new HostUnresolved(host);
      }
      if (addresses.length === 0) throw new HostUnresolved(host);
    }
    let refused: AddressRefused | undefined;
    for (const a of addresses) {
      const range = this.refusal(host, a.address);
      if (range === null) return a;
      refused ??= new AddressRefused(host, a.address, range);
    }
    throw refused!;
  }
}
