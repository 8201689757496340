import type { FastifyInstance } from 'fastify';

const CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'";

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Runbook runtime server</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}
li{margin:.4rem 0}code{background:#f2f2f2;padding:0 .25rem}</style></head>
<body><h1>Runbook runtime server</h1>
<p>Runs coding agents on runbooks in sandboxes and streams what they do, behind an OpenAI-compatible API.</p>
<ul>
<li><a href="/ui">Runs</a>: watch and browse your collection's runs (sign in with an API key)</li>
<li><a href="/docs">API reference</a>: every route, try it out (<a href="/openapi.json">OpenAPI document</a>)</li>
<li><a href="/admin/queues">Queue dashboard</a>: for the operator (admin token)</li>
<li><a href="/healthz">/healthz</a>, <a href="/readyz">/readyz</a> and <a href="/metrics">/metrics</a>: for probes and Prometheus</li>
</ul>
<p>From a terminal: <code>npx jetty run RUNBOOK.md --server URL --key KEY</code>.</p>
</body></html>
`;

/** GET /: a page that says what this server is and links to what a person opens next. */
export function landingRoutes(app: FastifyInstance): void {
  app.get('/', { schema: { hide: true }, config: { auth: 'public' } }, async (_req, reply) =>
    reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('content-security-policy', CSP)
      .header('x-content-type-options', 'nosniff')
      .header('cache-control', 'no-cache')
      .send(PAGE),
  );
}
