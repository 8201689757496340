import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { JettyClient } from '@jetty/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UPSTREAMS } from '../../src/providers/upstreams.js';
import {
  badAuth,
  badSegment,
  chance,
  deepJson,
  int,
  junkString,
  junkValue,
  MALFORMED_JSON,
  multipartBody,
  mutate,
  ODD_CONTENT_TYPES,
  pick,
  prng,
  type Rand,
  withPollution,
} from '../support/fuzz-gen.js';
import { type Harness, runbookRequest, startHarness } from '../support/harness.js';
import { claudeLines, ScriptedDriver } from '../support/scripted-driver.js';

// Bad requests, generated from a seed, to every route of the committed OpenAPI document, on a real
// server and Redis (the sandbox is scripted: this is about the HTTP surface). No answer may be a
// 5xx, and the process's memory stays bounded. A failure prints its seed: FUZZ_SEED=<seed>
// replays the same requests, and FUZZ_ONLY=<index> sends just one of them.
const SEED = Number(process.env.FUZZ_SEED ?? randomInt(2 ** 31));
const COUNT = Number(process.env.FUZZ_REQUESTS ?? 2000);
const ONLY = process.env.FUZZ_ONLY === undefined ? undefined : Number(process.env.FUZZ_ONLY);
const CONCURRENCY = 8;
const RSS_LIMIT = 400 * 1024 * 1024;
const ADMIN_TOKEN = 'fuzz-admin-token-0123456789abcdef0123456789';
const RUNBOOK = '---\nagent: claude-code\n---\n# Hello\nWrite {{results_dir}}/hello.txt\n';
// Every upstream points at a closed loopback port: nothing generated here can reach a provider.
const UPSTREAM_ENV = Object.fromEntries(
  Object.values(UPSTREAMS).map((u) => [u.urlEnv, 'http://127.0.0.1:9']),
);

interface Route {
  method: string;
  path: string;
  bodySchema: boolean;
}
const DOC = JSON.parse(readFileSync(new URL('../../openapi/openapi.json', import.meta.url), 'utf8')) as {
  paths: Record<string, Record<string, { requestBody?: unknown }>>;
};
const ROUTES: Route[] = Object.entries(DOC.paths).flatMap(([p, ops]) =>
  Object.entries(ops).map(([m, op]) => ({
    method: m.toUpperCase(),
    path: p,
    bodySchema: Boolean(op.requestBody),
  })),
);

/** Known-good bodies per route, for mutation. Loopback-only URLs. */
function seedBody(route: Route, ctx: Ctx): unknown {
  const p = route.path;
  if (p === '/v1/chat/completions')
    return runbookRequest(RUNBOOK, {
      stream: false,
      jetty: { template_variables: { name: 'x' }, webhook_url: 'http://127.0.0.1:9/hook', timeout_hint: 5 },
    });
  if (p === '/v1/keys') return { name: 'fuzz' };
  if (p.startsWith('/api/v1/collections/{c}/environment'))
    return { environment_variables: { FUZZ_VAR: 'v' } };
  if (p.endsWith('/check-secrets')) return { required_keys: ['FUZZ_VAR'] };
  if (p === '/api/v1/collections/') return { name: 'fuzz-coll', description: 'd' };
  if (p.startsWith('/api/v1/tasks/')) return { name: 'fuzz-task', description: 'd', workflow: ctx.workflow };
  if (p.endsWith('/labels')) return { key: 'k', value: 'v', author: 'a' };
  if (p.endsWith('/statuses')) return { [ctx.runId]: 'cancelled' };
  return {};
}

interface Ctx {
  collection: string;
  runId: string;
  keyId: string;
  workflow: unknown;
  key: string;
}

interface Spec {
  method: string;
  /** The route it aims at (the document's path), for coverage. */
  route: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
}

const MULTIPART_ROUTES = new Set([
  '/api/v1/run/{c}/{t}',
  '/api/v1/run-sync/{c}/{t}',
  '/api/v1/sandbox/upload',
]);

function fillPath(r: Rand, route: Route, ctx: Ctx): string {
  const bad = chance(r, 0.35);
  const value = (name: string): string => {
    if (bad && chance(r, 0.6)) return badSegment(r);
    switch (name) {
      case 'c':
        return chance(r, 0.9) ? ctx.collection : 'other-collection';
      case 't':
        return chance(r, 0.8) ? 'report' : 'no-such-task';
      case 'id':
        return route.path.startsWith('/v1/keys') ? ctx.keyId : ctx.runId;
      case 'wid':
        return `${ctx.collection}-report--${ctx.runId}`;
      case 'name':
        return pick(r, ['runbook', 'nope']);
      case '*':
        return pick(r, [
          `${ctx.collection}/report/${ctx.runId}/hello.txt`,
          'hello.txt',
          '../../../../master.key',
          '..%2F..%2F..%2Fmaster.key',
          `${ctx.collection}/_uploads/x/%252E%252E%252Fmaster.key`,
          'a/'.repeat(500),
        ]);
      default:
        return 'x';
    }
  };
  let path = route.path.replace(/\{([^}]+)\}/g, (_, name: string) => value(name));
  if (chance(r, 0.2)) {
    const q = pick(r, [
      'limit=-1',
      'limit=1e9',
      'limit=abc',
      'cursor=%00',
      `cursor=${'9'.repeat(400)}`,
      'status=%F0%9F%98%80',
      'page=NaN',
      'after=99999999999999-0',
      'after=abc',
      'task=..%2F..',
      `x=${'y'.repeat(5000)}`,
      'limit=1&limit=2',
    ]);
    path += `?${q}`;
  }
  if (chance(r, 0.05)) path = pick(r, ['//', '/./', '/%2e/', '/../']) + path.slice(1);
  return path;
}

function jsonBody(r: Rand, route: Route, ctx: Ctx): string {
  const kind = int(r, 20);
  if (kind < 8) return JSON.stringify(mutate(r, seedBody(route, ctx)));
  if (kind < 10) return JSON.stringify(junkValue(r, 3));
  if (kind < 11) return deepJson(r, pick(r, [65, 500, 5000, 50_000]));
  if (kind < 13) return pick(r, MALFORMED_JSON);
  if (kind < 14) return JSON.stringify({ ...(seedBody(route, ctx) as object), pad: 'p'.repeat(2_200_000) });
  if (kind < 17) return withPollution(JSON.stringify(seedBody(route, ctx)));
  if (kind < 18) return '';
  // A nested field of the seed made deep: template_variables and other free-form objects.
  return JSON.stringify(seedBody(route, ctx)).replace(
    /\{"name":"x"\}|\{\}$/,
    deepJson(r, pick(r, [3000, 10_000, 50_000])),
  );
}

function headersFor(r: Rand, ctx: Ctx): Record<string, string> {
  const h: Record<string, string> = {};
  const auth = chance(r, 0.8) ? `Bearer ${ctx.key}` : badAuth(r, ctx.key);
  if (auth !== undefined) h.authorization = auth;
  if (chance(r, 0.1)) h['x-jetty-admin-token'] = ADMIN_TOKEN;
  if (chance(r, 0.05)) h['x-big'] = 'b'.repeat(pick(r, [8000, 20_000]));
  if (chance(r, 0.1)) h['x-request-id'] = pick(r, ['', 'a'.repeat(300), '../x', 'é', '\t']);
  if (chance(r, 0.1)) h['last-event-id'] = pick(r, ['abc', '-1', '99999999999999-0', '0-0', '1-2-3', '']);
  if (chance(r, 0.1))
    h['idempotency-key'] = junkString(r)
      .replace(/[^\x20-\x7e]/g, '')
      .slice(0, 5000);
  if (chance(r, 0.05)) h.accept = pick(r, ['text/event-stream', '*/*;q=x', '']);
  return h;
}

function generate(r: Rand, index: number, ctx: Ctx): Spec {
  // Every route in turn, so that each gets its share; the rest of the request is random.
  const route = ROUTES[index % ROUTES.length]!;
  const method = chance(r, 0.05)
    ? pick(r, ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])
    : route.method;
  const headers = headersFor(r, ctx);
  const spec: Spec = {
    method,
    route: `${route.method} ${route.path}`,
    path: fillPath(r, route, ctx),
    headers,
  };
  if (method === 'GET' || method === 'DELETE' || method === 'OPTIONS') {
    if (chance(r, 0.05)) spec.body = Buffer.from('{"unexpected":true}');
    if (spec.body) headers['content-type'] = 'application/json';
    return spec;
  }
  if (MULTIPART_ROUTES.has(route.path) ? chance(r, 0.8) : chance(r, 0.05)) {
    const mp = multipartBody(r, () => {
      const f: Record<string, string> = {};
      if (chance(r, 0.8))
        f.init_params = chance(r, 0.5)
          ? JSON.stringify(mutate(r, { vars: { name: 'x' } }))
          : pick(r, [...MALFORMED_JSON, deepJson(r, pick(r, [2000, 10_000]))]);
      if (chance(r, 0.3)) f.secret_params = JSON.stringify(junkValue(r, 1));
      if (chance(r, 0.2))
        f.webhook_url = pick(r, ['http://127.0.0.1:9/x', 'ftp://127.0.0.1/x', junkString(r).slice(0, 100)]);
      if (chance(r, 0.1)) f.webhook_secret = junkString(r).slice(0, 100);
      return f;
    });
    headers['content-type'] = mp.contentType;
    spec.body = mp.body;
    return spec;
  }
  headers['content-type'] = chance(r, 0.85) ? 'application/json' : pick(r, ODD_CONTENT_TYPES);
  spec.body = Buffer.from(jsonBody(r, route, ctx), 'utf8');
  return spec;
}

interface Outcome {
  status: number | 'no-answer' | 'timeout' | 'unsendable';
  detail?: string;
  /** For an error the server (not Node's HTTP parser) wrote: whether it is the OpenAI envelope with a request id. */
  envelopeProblem?: string;
}

/** Every error body the API writes is the OpenAI envelope, and every answer carries x-request-id. */
function envelopeProblem(status: number, headers: Record<string, unknown>, text: string): string | undefined {
  if (status < 400 || !String(headers['content-type'] ?? '').includes('json')) return undefined;
  if (!headers['x-request-id']) return 'no x-request-id';
  try {
    const e = (JSON.parse(text) as { error?: Record<string, unknown> }).error;
    if (!e || typeof e.message !== 'string' || typeof e.type !== 'string' || typeof e.code !== 'string')
      return `not the OpenAI envelope: ${text.slice(0, 120)}`;
  } catch {
    return `not JSON: ${text.slice(0, 120)}`;
  }
  return undefined;
}

/** Sends one request; reads at most 256 KB of the answer (an event stream: only its status). */
function send(base: URL, spec: Spec): Promise<Outcome> {
  return new Promise((resolve) => {
    let req: ReturnType<typeof httpRequest>;
    const timer = setTimeout(() => {
      req?.destroy();
      resolve({ status: 'timeout' });
    }, 20_000);
    const done = (o: Outcome) => {
      clearTimeout(timer);
      resolve(o);
    };
    try {
      req = httpRequest(
        {
          host: base.hostname,
          port: base.port,
          method: spec.method,
          path: spec.path,
          headers: spec.body ? { ...spec.headers, 'content-length': String(spec.body.length) } : spec.headers,
          // A connection per request: a server refusing a request in its HTTP parser (431) closes
          // the connection, and a pooled client can lose its next request to that race. Keep-alive
          // after an early answer has a test of its own (http-input-bounds).
          agent: false,
        },
        (res) => {
          const status = res.statusCode ?? 0;
          if (String(res.headers['content-type']).startsWith('text/event-stream')) {
            res.destroy();
            return done({ status });
          }
          let text = '';
          res.on('data', (c: Buffer) => {
            if (text.length < 256 * 1024) text += c.toString('utf8');
          });
          res.on('end', () =>
            done({
              status,
              detail: text.slice(0, 300),
              envelopeProblem: envelopeProblem(status, res.headers, text),
            }),
          );
          res.on('error', () => done({ status, detail: '(answer cut)' }));
        },
      );
    } catch (err) {
      // The client refuses some generated paths or headers outright; they never reach the server.
      return done({ status: 'unsendable', detail: (err as Error).message });
    }
    // A server that answers early (413, 431) may close before a big body is all sent.
    req.on('error', (err) => done({ status: 'no-answer', detail: (err as Error).message }));
    req.end(spec.body);
  });
}

let h: Harness;
let ctx: Ctx;

beforeAll(async () => {
  h = await startHarness({
    driver: new ScriptedDriver(() => claudeLines({ steps: 1, delayMs: 0 })),
    env: {
      JETTY_ADMIN_TOKEN: ADMIN_TOKEN,
      WORKER_CONCURRENCY: '8',
      MAX_UPLOAD_BYTES: '64k',
      MAX_UPLOAD_FILES: '10',
      WEBHOOK_ATTEMPTS: '1',
      ...UPSTREAM_ENV,
    },
  });
  const sdk = new JettyClient({ apiUrl: h.url, token: h.key, maxRetries: 0 });
  const workflow = {
    steps: ['run'],
    step_configs: { run: { activity: 'runbook' } },
    init_params: { agent: 'claude-code', model_provider: 'simulated', instruction: RUNBOOK },
  };
  await sdk.createTask(h.collection, 'report', workflow);
  const res = await h.postJson(`${h.url}/v1/chat/completions`, runbookRequest(RUNBOOK, { stream: false }));
  const runId = ((await res.json()) as { jetty_metadata: { trajectory_id: string } }).jetty_metadata
    .trajectory_id;
  // A key the fuzzer may revoke: never the one it sends.
  const decoy = await h.server.tenancy.createApiKey(h.collection, { name: 'decoy' });
  ctx = { collection: h.collection, runId, keyId: decoy.id, workflow, key: h.key };
});

afterAll(async () => {
  await h?.stop();
});

describe('the HTTP surface under generated bad requests', () => {
  it(`answers ${COUNT} of them without a 5xx, in bounded memory`, async () => {
    console.log(`fuzz seed ${SEED}: FUZZ_SEED=${SEED} replays these ${COUNT} requests`);
    const r = prng(SEED);
    const specs = Array.from({ length: COUNT }, (_, i) => generate(r, i, ctx));
    const indexes = ONLY === undefined ? specs.map((_, i) => i) : [ONLY];
    const base = new URL(h.url);
    const outcomes = new Map<number, Outcome>();
    let maxRss = process.memoryUsage().rss;
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < indexes.length) {
          const i = indexes[next++]!;
          outcomes.set(i, await send(base, specs[i]!));
          maxRss = Math.max(maxRss, process.memoryUsage().rss);
        }
      }),
    );

    const show = (i: number) => {
      const s = specs[i]!;
      const o = outcomes.get(i)!;
      const heads = Object.entries(s.headers).map(
        ([k, v]) => `${k}=${v.slice(0, 40)}${v.length > 40 ? `…(${v.length})` : ''}`,
      );
      return `#${i} ${s.method} ${s.path.slice(0, 160)} {${heads.join(', ')}} [${s.body?.length ?? 0} B] -> ${o.status} ${o.envelopeProblem ?? o.detail ?? ''}`;
    };
    const failed = indexes.filter((i) => {
      const { status: st, envelopeProblem: bad } = outcomes.get(i)!;
      return (typeof st === 'number' && st >= 500) || st === 'timeout' || bad !== undefined;
    });
    const counts: Record<string, number> = {};
    for (const o of outcomes.values()) counts[String(o.status)] = (counts[String(o.status)] ?? 0) + 1;
    console.log(
      `fuzz seed ${SEED}: statuses ${JSON.stringify(counts)}; max RSS ${(maxRss / 2 ** 20).toFixed(0)} MB`,
    );
    expect(failed.map(show), `FUZZ_SEED=${SEED}`).toEqual([]);

    // A request the server never answered is one it refused early (a body past a limit), and the
    // server is still there for the next.
    const unanswered = indexes.filter((i) => outcomes.get(i)!.status === 'no-answer');
    for (const i of unanswered)
      expect(
        (specs[i]!.body?.length ?? 0) + JSON.stringify(specs[i]!.headers).length,
        show(i),
      ).toBeGreaterThan(60_000);
    expect((await fetch(`${h.url}/healthz`)).status).toBe(200);
    expect(maxRss, `FUZZ_SEED=${SEED}`).toBeLessThan(RSS_LIMIT);
    if (ONLY === undefined) {
      const sent = indexes.filter((i) => outcomes.get(i)!.status !== 'unsendable').length;
      expect(sent).toBeGreaterThanOrEqual(1000);
      const routesHit = new Set(
        indexes.filter((i) => outcomes.get(i)!.status !== 'unsendable').map((i) => specs[i]!.route),
      );
      expect(routesHit.size).toBe(ROUTES.length);
    }
  });
});
