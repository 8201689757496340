import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { type FollowStats, Metrics } from '../metrics/registry.js';
import { type RateLimitSettings, registerCors, registerRateLimit } from './edges.js';
import { queueDashboardRoutes } from './routes/admin-queues.js';
import { landingRoutes } from './routes/landing.js';
import { metricsRoutes } from './routes/metrics.js';
import type { OpenStreams } from './streams.js';

/**
 * What an operator runs the API with beyond its routes (docs/operations.md): metrics, CORS, the
 * rate limit, the queue dashboard. Absent (tests, the OpenAPI generator): no CORS, no limit, an
 * unserved registry, the dashboard off.
 */
export interface OperationsDeps {
  metrics: Metrics;
  /** METRICS_TOKEN: a bearer token /metrics asks for; undefined: open. */
  metricsToken: string | undefined;
  /** CORS_ORIGINS; empty: no cross-origin access. */
  corsOrigins: string[];
  rateLimit: RateLimitSettings | undefined;
  /** The queues the dashboard shows, and how long its sign-in lasts. */
  dashboard: { queues: Queue[]; sessionTtlSec: number };
}

/**
 * The request hooks that must run before the bearer-key check: CORS preflights (which carry no
 * key) and the rate limit (which counts wrong keys too). Called before registerAuth.
 */
export async function registerEdges(app: FastifyInstance, deps: OperationsDeps | undefined): Promise<void> {
  await registerCors(app, deps?.corsOrigins ?? []);
  await registerRateLimit(app, deps?.rateLimit, deps?.metrics ?? new Metrics());
}

/** The landing page, /metrics and the queue dashboard. Called after the OpenAPI plugin, beside the other routes. */
export async function operationsRoutes(
  app: FastifyInstance,
  deps: OperationsDeps | undefined,
  opts: { adminToken: string | undefined; streams: OpenStreams; follows: () => FollowStats },
): Promise<void> {
  const metrics = deps?.metrics ?? new Metrics();
  const stop = metrics.countStreams(() => opts.streams.size);
  const stopFollows = metrics.watchFollowers(opts.follows);
  app.addHook('onClose', async () => {
    stop();
    stopFollows();
  });
  landingRoutes(app);
  metricsRoutes(app, metrics, deps?.metricsToken);
  await queueDashboardRoutes(app, {
    adminToken: opts.adminToken,
    queues: deps?.dashboard.queues ?? [],
    sessionTtlSec: deps?.dashboard.sessionTtlSec ?? 8 * 3600,
  });
}
