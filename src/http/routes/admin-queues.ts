import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Queue } from 'bullmq';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../errors.js';
import {
  ADMIN_COOKIE,
  clearedCookie,
  cookieValue,
  isAdminToken,
  isValidSession,
  makeSession,
  sessionCookie,
} from '../admin-session.js';
import { bearerOf } from '../auth.js';
import { envelope, toAppError } from '../errors.js';

export interface QueueDashboardOptions {
  /** JETTY_ADMIN_TOKEN; undefined: the dashboard is off. */
  adminToken: string | undefined;
  /** The queues it shows (runs, webhooks). */
  queues: Queue[];
  sessionTtlSec: number;
}

export const DASHBOARD_PATH = '/admin/queues';
const LOGIN_PATH = '/admin/login';
/** A sign-in form carries one token: anything longer is not one. */
const LOGIN_BODY_MAX = 4096;
const PAGE_CSP =
  "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const off = () =>
  new AppError(
    'The queue dashboard is off: set JETTY_ADMIN_TOKEN (at least 32 characters) on the API server to turn it on.',
    { status: 404, type: 'not_found_error', code: 'dashboard_off' },
  );

/**
 * Bull Board at /admin/queues, behind the admin token: a browser signs in at /admin/login (the
 * token goes in a form body, never a URL) and gets an HttpOnly, SameSite=Strict cookie; a script
 * sends `Authorization: Bearer <JETTY_ADMIN_TOKEN>`. It is read-only: a run's life is kept by its
 * record (cancel through the API), so retrying, removing or adding jobs from here would only
 * confuse it; job data is shown with secrets and MCP credentials masked.
 */
export async function queueDashboardRoutes(app: FastifyInstance, opts: QueueDashboardOptions): Promise<void> {
  await app.register(async (scope) => loginRoutes(scope, opts));
  await app.register(async (scope) => {
    // Bull Board's routes are public to the bearer-key hook; this scope's own gate checks them.
    scope.addHook('onRoute', (route) => {
      route.config = { ...route.config, auth: 'public' };
    });
    scope.addHook('onRequest', async (req, reply) => gate(req, reply, opts.adminToken));
    if (!opts.adminToken) {
      const refuse = async () => {
        throw off();
      };
      scope.get(DASHBOARD_PATH, { schema: { hide: true } }, refuse);
      scope.get(`${DASHBOARD_PATH}/*`, { schema: { hide: true } }, refuse);
      return;
    }
    const serverAdapter = new FastifyAdapter();
    serverAdapter.setBasePath(DASHBOARD_PATH);
    createBullBoard({
      queues: opts.queues.map((q) => maskedAdapter(q)),
      serverAdapter,
      options: {
        uiConfig: {
          boardTitle: 'Jetty queues',
          hideDocsLink: true,
          miscLinks: [{ text: 'Sign out', url: '/admin/logout' }],
        },
      },
    });
    // Errors in the OpenAI envelope, like every other route's. (Bull Board's type lists fewer
    // statuses than its adapter passes through.)
    serverAdapter.setErrorHandler((err: unknown) => {
      const e = toAppError(err);
      return { status: e.status as 500, body: envelope(e) };
    });
    await scope.register(serverAdapter.registerPlugin(), { prefix: DASHBOARD_PATH });
  });
}

async function gate(req: FastifyRequest, reply: FastifyReply, adminToken: string | undefined): Promise<void> {
  if (!adminToken) return; // the routes answer "off"
  void reply
    .header('x-frame-options', 'DENY')
    .header('referrer-policy', 'no-referrer')
    .header('cache-control', 'no-store');
  const bearer = bearerOf(req);
  const session = cookieValue(req.headers.cookie, ADMIN_COOKIE);
  const signedIn =
    (bearer !== null && isAdminToken(bearer, adminToken)) ||
    (session !== null && isValidSession(session, adminToken));
  if (!signedIn) {
    if (req.method === 'GET' && (req.headers.accept ?? '').includes('text/html')) {
      return reply.redirect(LOGIN_PATH, 303);
    }
    return reply
      .code(401)
      .send(
        envelope(
          new AppError(
            `The queue dashboard needs the admin token: sign in at ${LOGIN_PATH}, or send Authorization: Bearer <JETTY_ADMIN_TOKEN>.`,
            { status: 401, type: 'authentication_error', code: 'admin_token_required' },
          ),
        ),
      );
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    return reply
      .code(405)
      .send(
        envelope(
          new AppError(
            'The queue dashboard is read-only: a run is cancelled with POST /v1/runs/{id}/cancel, and retried by running it again.',
            { status: 405, type: 'invalid_request_error', code: 'dashboard_read_only' },
          ),
        ),
      );
  }
}

function loginRoutes(scope: FastifyInstance, opts: QueueDashboardOptions): void {
  scope.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string', bodyLimit: LOGIN_BODY_MAX },
    (_req, body, done) => done(null, Object.fromEntries(new URLSearchParams(body as string))),
  );
  const hidden = { schema: { hide: true }, config: { auth: 'public' as const } };
  scope.get(LOGIN_PATH, hidden, async (_req, reply) => {
    if (!opts.adminToken) throw off();
    return page(reply, 200, loginPage());
  });
  scope.post(LOGIN_PATH, hidden, async (req, reply) => {
    if (!opts.adminToken) throw off();
    const token = (req.body as Record<string, unknown> | undefined)?.token;
    if (typeof token !== 'string' || !isAdminToken(token, opts.adminToken)) {
      req.log.info({ code: 'admin_sign_in_refused' }, 'queue dashboard sign-in refused');
      return page(reply, 401, loginPage('That is not the admin token (JETTY_ADMIN_TOKEN). Try again.'));
    }
    const cookie = sessionCookie(
      makeSession(opts.adminToken, opts.sessionTtlSec),
      opts.sessionTtlSec,
      req.protocol === 'https',
    );
    return reply.header('set-cookie', cookie).redirect(DASHBOARD_PATH, 303);
  });
  scope.get('/admin/logout', hidden, async (_req, reply) =>
    reply.header('set-cookie', clearedCookie()).redirect(LOGIN_PATH, 303),
  );
}

function page(reply: FastifyReply, status: number, html: string): FastifyReply {
  return reply
    .code(status)
    .header('content-type', 'text/html; charset=utf-8')
    .header('content-security-policy', PAGE_CSP)
    .header('x-frame-options', 'DENY')
    .header('cache-control', 'no-store')
    .send(html);
}

function loginPage(problem?: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · Jetty queues</title>
<style>body{font:16px system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}
input{width:100%;padding:.5rem;font:inherit;box-sizing:border-box}button{margin-top:1rem;padding:.5rem 1rem;font:inherit}
.problem{color:#b00020}</style></head>
<body><h1>Queue dashboard</h1>
<p>Sign in with the server's admin token (<code>JETTY_ADMIN_TOKEN</code>).</p>
${problem ? `<p class="problem" role="alert">${problem}</p>` : ''}
<form method="post" action="${LOGIN_PATH}">
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button>
</form>
<p><a href="/">Back to the server's home page</a></p>
</body></html>
`;
}

/** Bull Board's view of a queue, read-only, with job data masked where it can hold a secret. */
function maskedAdapter(queue: Queue): BullMQAdapter {
  const adapter = new BullMQAdapter(queue, { readOnlyMode: true });
  adapter.setFormatter('data', (data: unknown) => maskJobData(data));
  return adapter;
}

const SECRET_KEYS = new Set(['secret', 'secretParams', 'token', 'apiKey', 'password']);
const SECRET_MAPS = new Set(['env', 'headers']);

/**
 * A copy of a job's data with the values that may be secrets masked: a webhook's signing secret,
 * a run's encrypted secret values, and the env/headers of its MCP servers.
 */
export function maskJobData(data: unknown, depth = 0): unknown {
  if (depth > 20 || data === null || typeof data !== 'object') return data;
  if (Array.isArray(data)) return data.map((v) => maskJobData(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(data)) {
    if (SECRET_KEYS.has(k) && v !== undefined) out[k] = '[masked]';
    else if (SECRET_MAPS.has(k) && v !== null && typeof v === 'object' && !Array.isArray(v)) {
      out[k] = Object.fromEntries(Object.keys(v).map((name) => [name, '[masked]']));
    } else out[k] = maskJobData(v, depth + 1);
  }
  return out;
}
