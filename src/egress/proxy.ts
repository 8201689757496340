import { randomBytes } from 'node:crypto';
import {
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { NetworkSummary, NewEvent } from '../events/types.js';
import {
  type AddressPolicy,
  AddressRefused,
  bareHost,
  HostUnresolved,
  type ResolvedAddress,
} from '../net/address-policy.js';
import type { EgressLimits } from './limits.js';
import type { EgressPolicy } from './policy.js';
import { Connection, failed, type Refusal, RunTraffic, refused } from './run-traffic.js';

/**
 * The egress proxy: the only way from a sandbox (always --network none) to a host other than its
 * model. The provider gateway hands it the requests that are proxy requests (CONNECT, and
 * absolute-form URLs), which arrive on the same socket as model calls. A request names its run by
 * the per-run token in Proxy-Authorization (the sandbox's HTTP(S)_PROXY carries it). The proxy
 * applies the run's policy and bounds, resolves the name itself, checks every address against the
 * AddressPolicy (loopback, private, link-local, the worker's own: refused unless the operator lists
 * them) and connects to the checked address, so a name cannot be rebound between check and use.
 * TLS is tunnelled, never opened.
 */

export interface EgressProxyOptions {
  addresses: AddressPolicy;
  limits: EgressLimits;
  logger?: Logger;
  /** Opens the TCP connection to a checked address; tests give one that guards where it goes. */
  connect?: (target: { address: string; family: 4 | 6; port: number }) => Socket;
}

/** A run's hold on the proxy: the token its sandbox uses, and the end of it. */
export interface EgressSession {
  token: string;
  /** Cuts the run's open connections (each recorded) and returns what the run did. */
  close(): NetworkSummary;
}

export const PROXY_USER = 'jetty';

const REALM = 'Basic realm="jetty egress"';

// Hop-by-hop headers (RFC 9110 7.6.1) and the proxy's own: never passed on.
const HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authorization',
  'proxy-authenticate',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

export class EgressProxy {
  private readonly runs = new Map<string, RunTraffic>();
  private readonly connectTo: NonNullable<EgressProxyOptions['connect']>;

  constructor(private readonly opts: EgressProxyOptions) {
    this.connectTo = opts.connect ?? ((t) => netConnect({ host: t.address, family: t.family, port: t.port }));
  }

  /** Opens a run's session; `emit` receives its net.connect events (and a warning per bound reached). */
  open(runId: string, policy: EgressPolicy, emit: (event: NewEvent) => void): EgressSession {
    const token = `jeg_${randomBytes(24).toString('hex')}`;
    const traffic = new RunTraffic(runId, policy, this.opts.limits, emit);
    this.runs.set(token, traffic);
    return {
      token,
      close: () => {
        this.runs.delete(token);
        return traffic.close();
      },
    };
  }

  /** An HTTP CONNECT: a tunnel to host:port, once the run's policy and the address allow it. */
  async handleConnect(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    const run = this.runOf(req);
    if (!run) return void socket.end(authRequired());
    const target = authorityOf(req.url ?? '');
    if (!target) return void socket.end(answer(400, 'CONNECT needs host:port'));
    const conn = await this.admitAndResolve(run, target.host, target.port, 'connect');
    if (!(conn instanceof Connection)) return void socket.end(answer(conn.status, conn.reason));
    const upstream = await this.dial(run, conn);
    if (!upstream) return void socket.end(answer(502, `could not connect to ${target.host}:${target.port}`));
    if (conn.ended || socket.destroyed) {
      run.finish(conn, refused('client_closed', 'the client closed the connection', 0));
      upstream.destroy();
      return void socket.destroy();
    }
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    this.pipeTunnel(run, conn, socket, upstream, head);
  }

  /** A plain-HTTP request in absolute form (`GET http://host/path`): passed on and streamed back. */
  async handleRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const run = this.runOf(req);
    if (!run) {
      req.resume();
      res.writeHead(407, { 'proxy-authenticate': REALM, 'content-type': 'text/plain' });
      return void res.end('Proxy authentication required: use the HTTP_PROXY this sandbox was given.\n');
    }
    let url: URL;
    try {
      url = new URL(req.url ?? '');
    } catch {
      url = new URL('invalid:');
    }
    if (url.protocol !== 'http:') {
      req.resume();
      res.writeHead(400, { 'content-type': 'text/plain' });
      return void res.end('Only http:// URLs are proxied in absolute form; HTTPS goes through CONNECT.\n');
    }
    const host = bareHost(url.hostname);
    const port = Number(url.port || 80);
    const conn = await this.admitAndResolve(run, host, port, 'http', req.method);
    if (!(conn instanceof Connection)) {
      req.resume();
      res.writeHead(conn.status, { 'content-type': 'text/plain', 'x-jetty-egress': conn.code });
      return void res.end(`${conn.reason}\n`);
    }
    this.forward(run, conn, req, res, url);
  }

  private runOf(req: IncomingMessage): RunTraffic | undefined {
    const token = proxyToken(req.headers['proxy-authorization']);
    return token ? this.runs.get(token) : undefined;
  }

  /**
   * The run's policy and bounds first (no lookup for a host the run may not reach), then the
   * name's addresses, each checked; the connection will go to the checked one. A refusal is
   * recorded at once.
   */
  private async admitAndResolve(
    run: RunTraffic,
    host: string,
    port: number,
    kind: 'connect' | 'http',
    method?: string,
  ): Promise<Connection | Refusal> {
    const admitted = run.admit(host, port, kind, method);
    if (!(admitted instanceof Connection)) {
      run.refuse(host, port, kind, admitted, method);
      return admitted;
    }
    let pinned: ResolvedAddress;
    try {
      pinned = await this.opts.addresses.resolve(host);
    } catch (err) {
      const r =
        err instanceof AddressRefused
          ? refused('private_address', err.message, 403)
          : failed(
              'unresolved',
              err instanceof HostUnresolved ? err.message : `the host name ${host} does not resolve`,
            );
      run.finish(admitted, r);
      return r;
    }
    admitted.address = pinned.address;
    admitted.family = pinned.family;
    return admitted;
  }

  /** Connects to the checked address within EGRESS_CONNECT_TIMEOUT_MS; null (and recorded) if it cannot. */
  private dial(run: RunTraffic, conn: Connection): Promise<Socket | null> {
    const upstream = this.connectTo({ address: conn.address!, family: conn.family, port: conn.port });
    conn.destroy = () => upstream.destroy();
    return new Promise((resolve) => {
      const timer = setTimeout(
        () =>
          fail(
            'connect_timeout',
            `no connection within ${this.opts.limits.connectTimeoutMs} ms (EGRESS_CONNECT_TIMEOUT_MS)`,
          ),
        this.opts.limits.connectTimeoutMs,
      );
      const fail = (code: string, reason: string) => {
        clearTimeout(timer);
        upstream.destroy();
        // A failed dial moved no byte: it is recorded as failed, not as a cut connection.
        conn.address = undefined;
        run.finish(conn, failed(code, reason));
        resolve(null);
      };
      upstream.once('error', () =>
        fail('connect_failed', `${conn.host}:${conn.port} refused or dropped the connection`),
      );
      // Destroyed while dialling: the run ended (its close() recorded the connection).
      upstream.once('close', () => fail('run_ended', 'the run ended'));
      upstream.once('connect', () => {
        clearTimeout(timer);
        upstream.removeAllListeners('error');
        upstream.removeAllListeners('close');
        resolve(upstream);
      });
    });
  }

  /**
   * Relays bytes both ways, counted against the run's bound. A side that ends half-closes the
   * other, so the last bytes still arrive; the connection is recorded once both sides are closed,
   * or at once when it is cut (an error, the byte bound, idleness, the run's end).
   */
  private pipeTunnel(
    run: RunTraffic,
    conn: Connection,
    client: Duplex,
    upstream: Socket,
    head: Buffer,
  ): void {
    const cut = (why?: Refusal) => {
      run.finish(conn, why);
      client.destroy();
      upstream.destroy();
    };
    conn.destroy = () => cut();
    let closed = 0;
    const relay = (from: Duplex, to: Duplex, direction: 'up' | 'down') => {
      from.on('data', (chunk: Buffer) => {
        if (!run.count(conn, direction, chunk.length)) return cut(run.byteLimitCut());
        if (!to.write(chunk)) {
          from.pause();
          to.once('drain', () => from.resume());
        }
      });
      from.on('end', () => to.end());
      from.on('error', () => cut());
      from.on('close', () => {
        to.end();
        if (++closed === 2) run.finish(conn);
      });
    };
    relay(client, upstream, 'up');
    relay(upstream, client, 'down');
    const idleMs = this.opts.limits.idleTimeoutMs;
    idleCut(client as Socket, idleMs, () =>
      cut(refused('idle_timeout', `no byte either way for ${idleMs} ms (EGRESS_IDLE_TIMEOUT_MS)`, 0)),
    );
    if (head.length === 0) return;
    if (run.count(conn, 'up', head.length)) upstream.write(head);
    else cut(run.byteLimitCut());
  }

  /** One plain-HTTP request to the checked address; the Host header stays the URL's. */
  private forward(
    run: RunTraffic,
    conn: Connection,
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
  ): void {
    const { connectTimeoutMs, idleTimeoutMs } = this.opts.limits;
    const target = { address: conn.address!, family: conn.family, port: conn.port };
    const upstream = httpRequest({
      host: target.address,
      family: target.family,
      port: target.port,
      method: req.method,
      path: `${url.pathname}${url.search}`,
      headers: forwardHeaders(req, url),
      agent: false,
      setHost: false,
      createConnection: () => this.connectTo(target),
    });
    const cut = (why: Refusal) => {
      clearTimeout(timer);
      // Nothing reached the host: recorded as a failed attempt, not as a connection.
      if (!conn.ended && why.outcome === 'failed' && conn.status === undefined && conn.up === 0) {
        conn.address = undefined;
      }
      run.finish(conn, why);
      upstream.destroy();
      if (!res.headersSent) {
        res.writeHead(why.status || 502, { 'content-type': 'text/plain', 'x-jetty-egress': why.code });
        res.end(`${why.reason}\n`);
      } else res.destroy();
    };
    const timer = setTimeout(
      () =>
        cut(
          failed(
            'connect_timeout',
            `no connection within ${connectTimeoutMs} ms (EGRESS_CONNECT_TIMEOUT_MS)`,
          ),
        ),
      connectTimeoutMs,
    );
    upstream.on('socket', (s) => s.once('connect', () => clearTimeout(timer)));
    conn.destroy = () => {
      upstream.destroy();
      res.destroy();
    };
    upstream.on('error', () =>
      cut(failed('connect_failed', `${conn.host}:${conn.port} refused or dropped the connection`)),
    );
    upstream.setTimeout(idleTimeoutMs, () =>
      cut(
        refused('idle_timeout', `no byte either way for ${idleTimeoutMs} ms (EGRESS_IDLE_TIMEOUT_MS)`, 504),
      ),
    );
    req.on('data', (chunk: Buffer) => {
      if (!run.count(conn, 'up', chunk.length)) cut(run.byteLimitCut());
    });
    req.pipe(upstream);
    upstream.on('response', (up) => {
      conn.status = up.statusCode ?? 0;
      const out: OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(up.headers)) if (v !== undefined && !HOP.has(k)) out[k] = v;
      res.writeHead(conn.status, out);
      up.on('data', (chunk: Buffer) => {
        if (!run.count(conn, 'down', chunk.length)) return cut(run.byteLimitCut());
        if (!res.write(chunk)) {
          up.pause();
          res.once('drain', () => up.resume());
        }
      });
      up.on('end', () => {
        res.end();
        run.finish(conn);
      });
      up.on('error', () => cut(failed('upstream_closed', `${conn.host} closed the connection mid-answer`)));
    });
    res.on('close', () => {
      if (!conn.ended) cut(refused('client_closed', 'the client closed the connection', 0));
    });
  }
}

/** The request's headers as the upstream gets them: no hop-by-hop ones, the URL's Host. */
function forwardHeaders(req: IncomingMessage, url: URL): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {};
  const named = String(req.headers.connection ?? '')
    .toLowerCase()
    .split(/\s*,\s*/);
  for (const [k, v] of Object.entries(req.headers)) {
    if (v !== undefined && !HOP.has(k) && !named.includes(k)) headers[k] = v;
  }
  headers.host = url.host;
  return headers;
}

/** Cuts a socket that sees no byte either way (reads and writes both count) for `ms`. */
function idleCut(socket: Socket, ms: number, onIdle: () => void): void {
  socket.setTimeout(ms);
  socket.once('timeout', onIdle);
}

/** `host:port` of a CONNECT (IPv6 in brackets), or null. */
export function authorityOf(target: string): { host: string; port: number } | null {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:/\s[\]]+):(\d{1,5})$/.exec(target);
  if (!m) return null;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return null;
  return { host: bareHost(m[1]!), port };
}

/** The run token of a `Proxy-Authorization: Basic` header (the password; or the user if none). */
export function proxyToken(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return undefined;
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  const token = colon < 0 ? text : text.slice(colon + 1) || text.slice(0, colon);
  return token || undefined;
}

function authRequired(): string {
  return `HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: ${REALM}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`;
}

/** A whole HTTP/1.1 answer to a CONNECT that is refused: the reason is its body. */
function answer(status: number, reason: string): string {
  const body = `${reason}\n`;
  const text = STATUS_TEXT[status] ?? 'Error';
  return `HTTP/1.1 ${status} ${text}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  429: 'Too Many Requests',
  502: 'Bad Gateway',
};
