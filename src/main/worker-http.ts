import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError } from '../config/index.js';
import { METRICS_TOKEN_REQUIRED, metricsAllowed } from '../http/routes/metrics.js';
import type { Metrics } from '../metrics/registry.js';

export interface Readiness {
  checks: Record<string, boolean>;
  problems: Record<string, string>;
}

const PROBE_TIMEOUT_MS = 3_000;

/**
 * Runs every probe at once: each answers null when fine, else why not. A throw counts as its
 * message, and a probe still waiting after a few seconds (a worker's Redis client waits out an
 * outage) as not answering.
 */
export async function checkReadiness(
  probes: Record<string, () => Promise<string | null>>,
): Promise<Readiness> {
  const names = Object.keys(probes);
  const results = await Promise.all(names.map((n) => bounded(n, probes[n]!)));
  const checks: Record<string, boolean> = {};
  const problems: Record<string, string> = {};
  names.forEach((n, i) => {
    const problem = results[i] ?? null;
    checks[n] = problem === null;
    if (problem !== null) problems[n] = problem;
  });
  return { checks, problems };
}

async function bounded(name: string, probe: () => Promise<string | null>): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string>((resolve) => {
    timer = setTimeout(
      () => resolve(`${name} did not answer within ${PROBE_TIMEOUT_MS} ms`),
      PROBE_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([probe().catch((err: unknown) => (err as Error).message || String(err)), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The worker's /metrics: its registry, and the bearer token asked for (METRICS_TOKEN), if any. */
export interface WorkerMetrics {
  registry: Metrics;
  token: string | undefined;
}

/**
 * The small HTTP listener of a worker-only process: /healthz (the process answers), /readyz
 * (Redis, Docker and the gateway its sandboxes use all work), for orchestrators' health checks,
 * and /metrics for Prometheus. Nothing else: the worker takes its work from the queue, not HTTP.
 */
export async function startWorkerHttp(opts: {
  host: string;
  port: number;
  readiness: () => Promise<Readiness>;
  metrics?: WorkerMetrics;
}): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => void answer(req, res, opts.readiness, opts.metrics));
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE'
          ? new ConfigError(
              `WORKER_HTTP_PORT: ${opts.host}:${opts.port} is already in use (another worker on this host?). Give each worker process its own WORKER_HTTP_PORT, or 0 for none.`,
            )
          : err,
      ),
    );
    server.listen({ host: opts.host, port: opts.port }, () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  return { url: `http://${host}:${port}`, close: () => closeServer(server) };
}

async function answer(
  req: IncomingMessage,
  res: ServerResponse,
  readiness: () => Promise<Readiness>,
  metrics: WorkerMetrics | undefined,
): Promise<void> {
  const url = (req.url ?? '/').split('?')[0];
  const served = metrics ? 'GET /healthz, GET /readyz and GET /metrics' : 'GET /healthz and GET /readyz';
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    return send(
      res,
      405,
      envelope(`${req.method} is not served here; use ${served}`, 'invalid_request_error', 'not_found'),
    );
  }
  if (url === '/metrics' && metrics) return sendMetrics(req, res, metrics);
  if (url === '/healthz') return send(res, 200, { status: 'ok' });
  if (url === '/readyz') {
    const r = await readiness();
    const ok = Object.values(r.checks).every(Boolean);
    return send(
      res,
      ok ? 200 : 503,
      ok ? { status: 'ready', checks: r.checks } : { status: 'not_ready', ...r },
    );
  }
  return send(
    res,
    404,
    envelope(`${url} is not served by a worker; it serves ${served}`, 'invalid_request_error', 'not_found'),
  );
}

async function sendMetrics(req: IncomingMessage, res: ServerResponse, metrics: WorkerMetrics): Promise<void> {
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(req.headers.authorization ?? '');
  if (!metricsAllowed(m ? m[1]! : null, metrics.token)) {
    return send(res, 401, envelope(METRICS_TOKEN_REQUIRED, 'authentication_error', 'metrics_token_required'));
  }
  const text = await metrics.registry.text();
  res.writeHead(200, { 'content-type': metrics.registry.contentType, 'cache-control': 'no-cache' });
  res.end(text);
}

function envelope(message: string, type: string, code: 'not_found' | 'metrics_token_required') {
  return { error: { message, type, param: null, code } };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-cache' });
  res.end(text);
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}
