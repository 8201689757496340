import { chmod, mkdir, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { UsageData } from '../events/types.js';
import type { ProviderName } from '../runtimes/types.js';
import type { RunBudget } from './budget.js';
import { refusalFor } from './refusal.js';
import { modelCallOf, usageReaderForPath } from './usage.js';

/**
 * What serves proxy requests arriving on the gateway's socket (src/egress/proxy.ts): the sandbox's
 * HTTP(S)_PROXY points at the same forwarder as its model's base URL.
 */
export interface ProxyHandler {
  handleConnect(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void>;
  handleRequest(req: IncomingMessage, res: ServerResponse): Promise<void>;
}

/** Something that answers like fetch: a real provider, or the simulated one in-process. */
export type Upstream = (request: Request) => Promise<Response>;

export interface GatewayRoute {
  runId: string;
  provider: ProviderName;
  /** Base URL the request path is appended to, e.g. https://api.anthropic.com */
  baseUrl: string;
  upstream: Upstream;
  /** How the real key is presented upstream; the CLI's token never leaves the gateway. */
  auth: { header: string; value: string } | null;
  onUsage: (usage: UsageData) => void;
  onRequest?: (info: { method: string; path: string; status: number; ms: number }) => void;
  /** Added as `retry-after-ms` to 429 and 5xx answers (see RuntimeAdapter.gatewayRetryAfterMs). */
  retryAfterMs?: number;
  /** The run's budget: every model call's usage is added to it, and once it is spent the next call is refused. */
  budget?: RunBudget;
}

// Headers that describe one hop, or carry the CLI's token: never forwarded.
const DROP_REQUEST = new Set([
  'host',
  'connection',
  'keep-alive',
  'content-length',
  'transfer-encoding',
  'x-api-key',
  'authorization',
  'x-goog-api-key',
  'proxy-authorization',
  'upgrade',
]);
const DROP_RESPONSE = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'content-encoding',
  'content-length',
]);

/**
 * The provider gateway: an HTTP server on a unix socket that sandboxes reach through a forwarder.
 * It swaps the per-run token for the real key, forwards, streams the answer back untouched and
 * reads usage from every response.
 */
export class ProviderGateway {
  private readonly routes = new Map<string, GatewayRoute>();
  private server: Server | undefined;

  constructor(
    readonly socketPath: string,
    private readonly logger?: Logger,
    /** The egress proxy; without one, proxy requests are refused. */
    private readonly proxy?: ProxyHandler,
  ) {}

  async start(): Promise<void> {
    const dir = path.dirname(this.socketPath);
    await mkdir(dir, { recursive: true });
    // The sandbox user (uid 1000) must reach the socket but not replace it: dir 0755, socket 0666.
    await chmod(dir, 0o755);
    await rm(this.socketPath, { force: true });
    const server = createServer((req, res) => void this.dispatch(req, res));
    server.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (this.proxy) return void this.proxy.handleConnect(req, socket, head).catch(() => socket.destroy());
      socket.end(NO_PROXY_CONNECT);
    });
    server.keepAliveTimeout = 65_000;
    server.requestTimeout = 0;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.socketPath, () => resolve());
    });
    await chmod(this.socketPath, 0o666);
    this.server = server;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
    await rm(this.socketPath, { force: true });
  }

  register(token: string, route: GatewayRoute): void {
    this.routes.set(token, route);
  }

  unregister(token: string): void {
    this.routes.delete(token);
  }

  /**
   * One socket, two services: a request whose target is an absolute URL (`GET http://host/…`) is
   * for the egress proxy, as CONNECT is; every other one (origin-form, `/v1/messages`) is a model
   * call. The forwarders and CLIs never send absolute-form to their base URL, so the two cannot mix.
   */
  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(req.url ?? '')) return this.handle(req, res);
    if (this.proxy) {
      return this.proxy.handleRequest(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(502).end();
        else res.destroy();
      });
    }
    req.resume();
    res.writeHead(403, { 'content-type': 'text/plain' }).end(NO_PROXY_TEXT);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    const method = req.method ?? 'GET';
    // A CLI that cannot send a key header (e.g. one told to skip request signing) gets a base URL
    // with the token in its first path segment instead: /_t/<token>/...
    const pathToken = /^\/_t\/([A-Za-z0-9_-]{8,128})(\/.*)?$/.exec(req.url ?? '/');
    const token = pathToken ? pathToken[1] : tokenOf(req);
    const urlPath = pathToken ? (pathToken[2] ?? '/') : (req.url ?? '/');
    const route = token ? this.routes.get(token) : undefined;
    if (!route) {
      // claude pre-connects with a HEAD / that carries no key: answer it without a route.
      if (method === 'HEAD' || (method === 'GET' && urlPath === '/')) {
        res.writeHead(200).end();
        return;
      }
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          type: 'error',
          error: {
            type: 'authentication_error',
            message: 'Unknown or expired run token at the provider gateway.',
          },
        }),
      );
      return;
    }
    if (this.refuseOverBudget(req, res, route, urlPath)) {
      route.onRequest?.({ method, path: urlPath.split('?')[0] ?? urlPath, status: res.statusCode, ms: 0 });
      return;
    }
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    let status = 502;
    try {
      const body = method === 'GET' || method === 'HEAD' ? undefined : await readBody(req);
      const headers = new Headers();
      for (const [k, v] of Object.entries(req.headers)) {
        if (v === undefined || DROP_REQUEST.has(k)) continue;
        headers.set(k, Array.isArray(v) ? v.join(', ') : v);
      }
      if (route.auth) headers.set(route.auth.header, route.auth.value);
      const target = route.baseUrl.replace(/\/$/, '') + urlPath;
      const upstreamRes = await route.upstream(
        new Request(target, { method, headers, body, signal: abort.signal }),
      );
      status = upstreamRes.status;
      const outHeaders: Record<string, string> = {};
      upstreamRes.headers.forEach((v, k) => {
        if (!DROP_RESPONSE.has(k)) outHeaders[k] = v;
      });
      const failed = upstreamRes.status === 429 || upstreamRes.status >= 500;
      if (failed && route.retryAfterMs !== undefined)
        outHeaders['retry-after-ms'] = String(route.retryAfterMs);
      res.writeHead(upstreamRes.status, outHeaders);
      const reader = usageReaderForPath(
        urlPath,
        upstreamRes.headers.get('content-type') ?? '',
        upstreamRes.headers,
      );
      if (upstreamRes.body) {
        for await (const chunk of upstreamRes.body as unknown as AsyncIterable<Uint8Array>) {
          reader?.push(chunk);
          if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
        }
      }
      res.end();
      const usage = upstreamRes.ok ? reader?.finish() : null;
      if (usage) {
        route.budget?.record(usage);
        route.onUsage(usage);
      }
    } catch (err) {
      if (abort.signal.aborted) return;
      this.logger?.warn(
        { runId: route.runId, err: (err as Error).message },
        'gateway upstream request failed',
      );
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            type: 'error',
            error: { type: 'api_error', message: `The provider gateway could not reach ${route.provider}.` },
          }),
        );
      } else {
        res.destroy();
      }
    } finally {
      route.onRequest?.({ method, path: urlPath.split('?')[0] ?? urlPath, status, ms: Date.now() - started });
    }
  }

  /**
   * A model call of a run whose budget is spent gets the provider's own kind of client error and
   * goes nowhere; the budget tells the worker, which ends the run as budget_exceeded.
   */
  private refuseOverBudget(
    req: IncomingMessage,
    res: ServerResponse,
    route: GatewayRoute,
    urlPath: string,
  ): boolean {
    const call = route.budget ? modelCallOf(urlPath) : null;
    const over = call ? route.budget?.admit() : null;
    if (!call || !over) return false;
    req.resume();
    const refusal = refusalFor(call.protocol, over.wire);
    res.writeHead(refusal.status, refusal.headers);
    res.end(refusal.body);
    return true;
  }
}

const NO_PROXY_TEXT = 'This worker has no egress proxy: the sandbox reaches only its model.\n';
const NO_PROXY_CONNECT = `HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(NO_PROXY_TEXT)}\r\nConnection: close\r\n\r\n${NO_PROXY_TEXT}`;

function tokenOf(req: IncomingMessage): string | undefined {
  const key = req.headers['x-api-key'] ?? req.headers['x-goog-api-key'];
  if (typeof key === 'string' && key) return key;
  const auth = req.headers.authorization;
  if (typeof auth === 'string' && auth.toLowerCase().startsWith('bearer ')) return auth.slice(7).trim();
  return undefined;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
