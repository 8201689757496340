/**
 * The operator's bounds on a run's egress (each has an EGRESS_* variable, see src/config). A
 * connection over one is refused or cut, and its net.connect event says which bound and variable.
 */
export interface EgressLimits {
  /** Destination ports a connection may use; `any` for every port. */
  ports: PortRule;
  /** Connections (tunnels and plain requests) one run may open in all. */
  maxConnections: number;
  /** Connections of one run open at once. */
  maxConcurrent: number;
  /** A connection with no byte either way for this long is closed. */
  idleTimeoutMs: number;
  /** Time to connect to the upstream. */
  connectTimeoutMs: number;
  /** Bytes one run may move through the proxy, both directions together. */
  maxBytes: number;
}

export type PortRule = 'any' | Array<[number, number]>;

export const DEFAULT_EGRESS_LIMITS: EgressLimits = {
  ports: [
    [80, 80],
    [443, 443],
  ],
  maxConnections: 1000,
  maxConcurrent: 32,
  idleTimeoutMs: 60_000,
  connectTimeoutMs: 10_000,
  maxBytes: 2 * 1024 ** 3,
};

/** EGRESS_PORTS: `*`, or ports and ranges separated by commas or spaces (`80,443,8000-8099`). */
export function parsePorts(raw: string): { ports: PortRule } | { error: string } {
  const text = raw.trim();
  if (text === '*') return { ports: 'any' };
  const out: Array<[number, number]> = [];
  for (const item of text.split(/[\s,]+/).filter(Boolean)) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(item);
    const lo = Number(m?.[1]);
    const hi = m?.[2] === undefined ? lo : Number(m[2]);
    if (!m || lo < 1 || hi > 65535 || lo > hi) {
      return {
        error: `"${item}" is not a port (1 to 65535) or a range such as 8000-8099; * allows every port`,
      };
    }
    out.push([lo, hi]);
  }
  if (out.length === 0) return { error: 'needs at least one port, or * for every port' };
  return { ports: out };
}

export function portAllowed(rule: PortRule, port: number): boolean {
  return rule === 'any' || rule.some(([lo, hi]) => port >= lo && port <= hi);
}

export function describePorts(rule: PortRule): string {
  return rule === 'any' ? '*' : rule.map(([lo, hi]) => (lo === hi ? String(lo) : `${lo}-${hi}`)).join(',');
}
