/**
 * Bearer keys on every route but health, readiness and the OpenAPI document. A collection's key
 * opens that collection and nothing else; the operator's admin token (JETTY_ADMIN_TOKEN) only
 * creates and lists collections. A request that names something of another collection gets the
 * same 404 as one naming something that does not exist: the routes do that, with `collectionOf`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError } from '../errors.js';
import { singleFlight } from '../single-flight.js';
import type { TenancyStore } from '../tenancy/store.js';

export type Principal = { kind: 'collection'; collection: string; keyId: string } | { kind: 'admin' };

/** Who may call a route: anyone, a collection key or the admin token, or a collection key (the default). */
export type RouteAuth = 'public' | 'admin-or-collection' | 'collection';

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: RouteAuth;
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
}

const HOW =
  'Send `Authorization: Bearer <key>` with a key of your collection (`npm run jetty -- keys create <collection>` makes one).';

function unauthorized(message: string): AppError {
  return new AppError(message, { status: 401, type: 'invalid_request_error', code: 'invalid_api_key' });
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** The bearer token of a request, or null. Only the `Bearer` scheme, any case, one token. */
export function bearerOf(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return null;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(h);
  return m ? m[1]! : null;
}

export function registerAuth(
  app: FastifyInstance,
  opts: { tenancy: TenancyStore; adminToken: string | undefined },
): void {
  const admin = opts.adminToken ? digest(opts.adminToken) : null;
  // Requests with the same key at the same moment (a thousand clients of one service following a
  // run) share one lookup in flight. Nothing is kept after it answers: a revoked key fails at once.
  const lookupApiKey = singleFlight((token) => opts.tenancy.lookupApiKey(token));
  app.decorateRequest('principal', null);
  app.addHook('onRequest', async (req) => {
    const auth = req.routeOptions.config?.auth ?? 'collection';
    // The docs UI registers its own routes; it describes the API and holds nothing of anyone's.
    const path = req.url.split('?')[0]!;
    if (auth === 'public' || path === '/docs' || path.startsWith('/docs/')) return;
    const token = bearerOf(req);
    if (token === null) {
      throw unauthorized(
        req.headers.authorization === undefined
          ? `No API key. ${HOW}`
          : `The Authorization header is not of the form \`Bearer <key>\`. ${HOW}`,
      );
    }
    if (admin && timingSafeEqual(digest(token), admin)) {
      if (auth !== 'admin-or-collection') {
        throw unauthorized(
          `The admin token only creates and lists collections. This route needs a collection's API key. ${HOW}`,
        );
      }
      req.principal = { kind: 'admin' };
      return;
    }
    const found = await lookupApiKey(token);
    if (!found) throw unauthorized(`The API key is not valid: it is unknown or was revoked. ${HOW}`);
    req.principal = { kind: 'collection', collection: found.collection, keyId: found.keyId };
  });
}

/** The caller's collection. Routes that need one are never reached without it. */
export function collectionOf(req: FastifyRequest): string {
  const p = req.principal;
  if (p?.kind !== 'collection') throw unauthorized(`This route needs a collection's API key. ${HOW}`);
  return p.collection;
}
