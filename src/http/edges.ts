import { createHash } from 'node:crypto';
import fastifyCors from '@fastify/cors';
import fastifyRateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import { AppError, quoted } from '../errors.js';
import type { Metrics } from '../metrics/registry.js';
import { bearerOf } from './auth.js';

export interface RateLimitSettings {
  /** Requests per key per window (RATE_LIMIT_MAX); 0: no limit. */
  max: number;
  windowSec: number;
  /** The counters live in Redis, so every API process shares them. */
  redis: Redis;
  keyPrefix: string;
}

/** Headers a browser page may read from a cross-origin answer. */
const EXPOSED_HEADERS = [
  'x-request-id',
  'retry-after',
  'x-ratelimit-limit',
  'x-ratelimit-remaining',
  'x-ratelimit-reset',
  'content-disposition',
  'x-content-sha256',
];

/**
 * CORS: off unless CORS_ORIGINS lists origins. Browsers' preflights from a listed origin are
 * answered before any key is asked for (a preflight never carries one); any other preflight gets a
 * 403 that says why, instead of a 401 or 404 a developer would chase in the wrong place.
 */
export async function registerCors(app: FastifyInstance, origins: string[]): Promise<void> {
  if (origins.length > 0) {
    const listed = new Set(origins);
    await app.register(fastifyCors, {
      // false for an origin not listed: no CORS headers, and its preflight falls to the hook below.
      origin: listed.has('*')
        ? '*'
        : (origin: string | undefined, cb: (err: Error | null, allow: string | false) => void) =>
            cb(null, origin !== undefined && listed.has(origin) ? origin : false),
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
      exposedHeaders: EXPOSED_HEADERS,
      maxAge: 600,
    });
  }
  app.addHook('onRequest', async (req) => {
    if (req.method !== 'OPTIONS' || !req.headers.origin || !req.headers['access-control-request-method'])
      return;
    const why =
      origins.length === 0
        ? 'Cross-origin requests are off on this server. Its operator turns them on by listing your origin in CORS_ORIGINS.'
        : `The origin ${quoted(req.headers.origin, 200)} is not in this server's CORS_ORIGINS; its operator adds it there.`;
    throw new AppError(why, { status: 403, type: 'permission_error', code: 'cors_origin_not_allowed' });
  });
}

/** Paths no limit applies to: probes and scrapes, and the static pages that describe the API. */
function exempt(req: FastifyRequest): boolean {
  const path = req.url.split('?')[0]!;
  return (
    path === '/' ||
    path === '/healthz' ||
    path === '/readyz' ||
    path === '/metrics' ||
    path === '/api/v1/health' ||
    path === '/openapi.json' ||
    path === '/ui' ||
    path.startsWith('/ui/') ||
    path === '/docs' ||
    path.startsWith('/docs/')
  );
}

/**
 * The rate-limit key: a digest of the bearer key (a key in the clear never goes to Redis), or the
 * client's address for requests without one. Keys that are wrong count too, which slows guessing.
 */
export function rateLimitKey(req: FastifyRequest): string {
  const token = bearerOf(req);
  if (token === null) return `ip:${req.ip}`;
  return `key:${createHash('sha256').update(token).digest('hex').slice(0, 32)}`;
}

/**
 * A per-key limit with its counters in Redis (@fastify/rate-limit's store): past RATE_LIMIT_MAX
 * requests in RATE_LIMIT_WINDOW_SEC a request gets a 429 in the OpenAI envelope with retry-after,
 * which the OpenAI SDKs wait out and retry. It runs before the key is checked. When Redis cannot
 * count, requests pass: the routes themselves then answer 503.
 */
export async function registerRateLimit(
  app: FastifyInstance,
  settings: RateLimitSettings | undefined,
  metrics: Metrics,
): Promise<void> {
  if (!settings || settings.max === 0) return;
  const { max, windowSec } = settings;
  await app.register(fastifyRateLimit, {
    global: false,
    max,
    timeWindow: windowSec * 1000,
    redis: settings.redis,
    nameSpace: `${settings.keyPrefix}:ratelimit:`,
    skipOnError: true,
    keyGenerator: rateLimitKey,
    allowList: (req) => exempt(req),
    onExceeded: () => metrics.rateLimited.inc(),
    errorResponseBuilder: (_req, ctx) => {
      const retryAfter = Math.max(1, Math.ceil(ctx.ttl / 1000));
      const err = new AppError(
        `Too many requests with this API key: the limit is ${max} per ${windowSec} s (RATE_LIMIT_MAX, RATE_LIMIT_WINDOW_SEC on the server). Retry after ${retryAfter} s.`,
        {
          status: 429,
          type: 'rate_limit_error',
          code: 'rate_limit_exceeded',
          headers: { 'retry-after': String(retryAfter) },
        },
      );
      // Plugins with an error handler of their own (the queue dashboard) read statusCode.
      return Object.assign(err, { statusCode: 429 });
    },
  });
  app.addHook('onRequest', app.rateLimit());
}
