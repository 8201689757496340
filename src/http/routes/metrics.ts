import type { FastifyInstance } from 'fastify';
import { AppError } from '../../errors.js';
import type { Metrics } from '../../metrics/registry.js';
import { isAdminToken } from '../admin-session.js';
import { bearerOf } from '../auth.js';

/** Whether a scrape may read the metrics: always when no METRICS_TOKEN is set. */
export function metricsAllowed(authorization: string | null, token: string | undefined): boolean {
  return token === undefined || (authorization !== null && isAdminToken(authorization, token));
}

export const METRICS_TOKEN_REQUIRED =
  'GET /metrics needs Authorization: Bearer <METRICS_TOKEN> (the token set on this server); give it to your scraper (Prometheus: authorization.credentials).';

/**
 * GET /metrics: this process's instruments in the Prometheus text format. Open by default (counts
 * by runtime, provider and status; no collection, key or run id ever appears), or behind a bearer
 * token when METRICS_TOKEN is set.
 */
export function metricsRoutes(app: FastifyInstance, metrics: Metrics, token: string | undefined): void {
  app.get(
    '/metrics',
    {
      config: { auth: 'public' },
      schema: {
        summary:
          'Prometheus metrics of this process (text format); METRICS_TOKEN, when set, as a bearer token',
        tags: ['health'],
      },
    },
    async (req, reply) => {
      if (!metricsAllowed(bearerOf(req), token)) {
        throw new AppError(METRICS_TOKEN_REQUIRED, {
          status: 401,
          type: 'authentication_error',
          code: 'metrics_token_required',
        });
      }
      return reply.header('content-type', metrics.contentType).send(await metrics.text());
    },
  );
}
