import {
  MAX_NETWORK_HOSTS,
  type NetConnectData,
  type NetworkHost,
  type NetworkSummary,
  type NewEvent,
} from '../events/types.js';
import { describePorts, type EgressLimits, portAllowed } from './limits.js';
import { admits, describePolicy, type EgressPolicy } from './policy.js';

/** Why a connection was refused (or failed) before any byte went through. */
export interface Refusal {
  outcome: 'refused' | 'failed';
  code: string;
  reason: string;
  /** The HTTP status the client gets. */
  status: number;
}

/** One connection of a run, from its admission to its event. */
export class Connection {
  readonly started = Date.now();
  address: string | undefined;
  family: 4 | 6 = 4;
  status: number | undefined;
  up = 0;
  down = 0;
  ended = false;
  /** Set by the proxy once sockets exist: ends them (the run ended, or a bound was passed). */
  destroy: () => void = () => undefined;

  constructor(
    readonly host: string,
    readonly port: number,
    readonly kind: 'connect' | 'http',
    readonly method?: string,
  ) {}
}

type LimitName = 'connections' | 'concurrent' | 'bytes';

/**
 * What one run does through the egress proxy: its policy and bounds, its open connections, and
 * the tally its summary is made of. Every connection ends here exactly once, as one net.connect.
 */
export class RunTraffic {
  private readonly open = new Set<Connection>();
  private readonly hosts = new Map<string, NetworkHost>();
  private readonly warned = new Set<LimitName>();
  private opened = 0;
  private bytes = 0;
  private closed = false;
  private readonly tally = { allowed: 0, refused: 0, failed: 0, up: 0, down: 0 };

  constructor(
    readonly runId: string,
    readonly policy: EgressPolicy,
    private readonly limits: EgressLimits,
    private readonly emit: (event: NewEvent) => void,
  ) {}

  /**
   * Admits a connection to host:port, or says why not (port, policy, the run's bounds). An admitted
   * connection holds one of the run's concurrent places until it is finished.
   */
  admit(host: string, port: number, kind: 'connect' | 'http', method?: string): Connection | Refusal {
    const refusal = this.check(host, port);
    if (refusal) return refusal;
    const conn = new Connection(host, port, kind, method);
    this.opened++;
    this.open.add(conn);
    return conn;
  }

  private check(host: string, port: number): Refusal | null {
    const l = this.limits;
    if (this.closed) return refused('run_ended', 'the run has ended', 403);
    if (!portAllowed(l.ports, port)) {
      return refused(
        'port_not_allowed',
        `port ${port} is not one the egress proxy connects to (EGRESS_PORTS=${describePorts(l.ports)})`,
        403,
      );
    }
    if (!admits(this.policy, host)) {
      return refused(
        'not_allowed',
        `${host} is not allowed by this run's egress policy, ${describePolicy(this.policy)}; the collection's egress_allow or the runbook's network lists the hosts a run may reach`,
        403,
      );
    }
    if (this.opened >= l.maxConnections) {
      return this.overLimit(
        'connections',
        `the run opened its ${l.maxConnections} connections (EGRESS_MAX_CONNECTIONS)`,
      );
    }
    if (this.open.size >= l.maxConcurrent) {
      return this.overLimit(
        'concurrent',
        `the run has ${l.maxConcurrent} connections open at once (EGRESS_MAX_CONCURRENT)`,
      );
    }
    if (this.bytes >= l.maxBytes) {
      return this.overLimit(
        'bytes',
        `the run moved its ${l.maxBytes} bytes through the proxy (EGRESS_MAX_BYTES)`,
      );
    }
    return null;
  }

  private overLimit(limit: LimitName, reason: string): Refusal {
    this.warnOnce(limit, reason);
    const code =
      limit === 'bytes' ? 'byte_limit' : limit === 'concurrent' ? 'concurrency_limit' : 'connection_limit';
    return refused(code, reason, 429);
  }

  /** The first time a bound is reached, the run says so (it lands in jetty_metadata.warnings). */
  private warnOnce(limit: LimitName, reason: string): void {
    if (this.warned.has(limit)) return;
    this.warned.add(limit);
    this.emit({
      type: 'run.warning',
      data: { code: 'egress_limit', message: `Egress: ${reason}; further connections are refused or cut.` },
    });
  }

  /**
   * Counts bytes through a connection. False once the run's byte bound is passed: the caller then
   * cuts the connection and finishes it with `byteLimitCut()`.
   */
  count(conn: Connection, direction: 'up' | 'down', n: number): boolean {
    conn[direction] += n;
    this.bytes += n;
    return this.bytes <= this.limits.maxBytes;
  }

  byteLimitCut(): Refusal {
    return this.overLimit(
      'bytes',
      `the run moved more than its ${this.limits.maxBytes} bytes through the proxy (EGRESS_MAX_BYTES)`,
    );
  }

  /** A connection refused before it was admitted (the port, the policy, an address, a bound). */
  refuse(host: string, port: number, kind: 'connect' | 'http', r: Refusal, method?: string): void {
    const conn = new Connection(host, port, kind, method);
    this.record(conn, r);
  }

  /** Ends an admitted connection: its event, and its place freed. `end` says why, when not a normal close. */
  finish(conn: Connection, end?: Refusal): void {
    if (conn.ended) return;
    this.open.delete(conn);
    this.record(conn, end);
  }

  private record(conn: Connection, end?: Refusal): void {
    conn.ended = true;
    const outcome = end && conn.address === undefined ? end.outcome : 'allowed';
    const data: NetConnectData = {
      host: conn.host,
      port: conn.port,
      kind: conn.kind,
      outcome,
      ...(end ? { code: end.code, reason: end.reason } : {}),
      ...(conn.address ? { address: conn.address } : {}),
      ...(conn.method ? { method: conn.method } : {}),
      ...(conn.status !== undefined ? { status: conn.status } : {}),
      bytes_up: conn.up,
      bytes_down: conn.down,
      ms: Date.now() - conn.started,
    };
    this.tally[outcome]++;
    this.tally.up += conn.up;
    this.tally.down += conn.down;
    const h = this.hosts.get(conn.host) ?? {
      host: conn.host,
      connections: 0,
      refused: 0,
      bytes_up: 0,
      bytes_down: 0,
    };
    h.connections++;
    if (outcome !== 'allowed') h.refused++;
    h.bytes_up += conn.up;
    h.bytes_down += conn.down;
    this.hosts.set(conn.host, h);
    this.emit({ type: 'net.connect', data });
  }

  /** The run is over: every open connection is cut (and recorded), and no other is admitted. */
  close(): NetworkSummary {
    this.closed = true;
    for (const conn of [...this.open]) {
      this.finish(conn, { outcome: 'refused', code: 'run_ended', reason: 'the run ended', status: 0 });
      conn.destroy();
    }
    return this.summary();
  }

  summary(): NetworkSummary {
    const hosts = [...this.hosts.values()].sort((a, b) => b.connections - a.connections);
    const t = this.tally;
    return {
      policy: this.policy.mode,
      ...(this.policy.mode === 'allowlist' ? { allow: [...this.policy.allow] } : {}),
      connections: t.allowed + t.refused + t.failed,
      allowed: t.allowed,
      refused: t.refused,
      failed: t.failed,
      bytes_up: t.up,
      bytes_down: t.down,
      hosts: hosts.slice(0, MAX_NETWORK_HOSTS),
      ...(hosts.length > MAX_NETWORK_HOSTS ? { hosts_omitted: hosts.length - MAX_NETWORK_HOSTS } : {}),
    };
  }
}

export function refused(code: string, reason: string, status: number): Refusal {
  return { outcome: 'refused', code, reason, status };
}

export function failed(code: string, reason: string): Refusal {
  return { outcome: 'failed', code, reason, status: 502 };
}

/** The summary of a run that had no egress at all (its policy is none). */
export function noNetworkSummary(policy: EgressPolicy): NetworkSummary {
  return new RunTraffic(
    '',
    policy,
    { ports: 'any', maxConnections: 0, maxConcurrent: 0, idleTimeoutMs: 0, connectTimeoutMs: 0, maxBytes: 0 },
    () => undefined,
  ).summary();
}
