import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect, Socket } from 'node:net';
import Dockerode from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, runbookRequest, startHarness } from '../support/harness.js';
import { sandboxesLeft } from '../support/sandboxes.js';
import { readSse } from '../support/sse.js';

// Egress end to end: the real server, Redis, the Docker engine, the claude CLI in its image
// (--network none), the simulated model running real commands. The sandbox's tool is Node's
// fetch with NODE_USE_ENV_PROXY=1 (the runtime images have no curl; Node reads HTTP(S)_PROXY and
// NO_PROXY that way, and tunnels through CONNECT). The upstreams are tiny servers on loopback
// addresses the operator allows (NETWORK_ALLOW_PRIVATE); every connection the proxy opens goes
// through a guard that refuses anything off loopback, so no packet can leave this machine.
const docker = new Dockerode();
let h: Harness;
const dialed: string[] = [];

function upstreamOn(host: string): Promise<{ server: Server; port: number; hits: string[] }> {
  const hits: string[] = [];
  const server = createServer((req, res) => {
    hits.push(req.url ?? '');
    res.end(`hello from ${host}\n`);
  });
  return new Promise((resolve) =>
    server.listen(0, host, () => resolve({ server, port: (server.address() as AddressInfo).port, hits })),
  );
}

let allowed: Awaited<ReturnType<typeof upstreamOn>>;
let other: Awaited<ReturnType<typeof upstreamOn>>;

beforeAll(async () => {
  allowed = await upstreamOn('127.0.0.2');
  other = await upstreamOn('127.0.0.3');
  h = await startHarness({
    env: {
      EGRESS_POLICY: 'open',
      EGRESS_PORTS: `80,443,${allowed.port},${other.port}`,
      NETWORK_ALLOW_PRIVATE: '127.0.0.2,127.0.0.3',
    },
    egressConnect: (t) => {
      dialed.push(t.address);
      if (t.address.startsWith('127.')) return connect({ host: t.address, port: t.port });
      const s = new Socket();
      process.nextTick(() => s.destroy(new Error('test guard: off loopback')));
      return s;
    },
  });
}, 120_000);

afterEach(async () => {
  // Warm sandboxes no run has claimed stay with the pool (the harness checks they go at its stop).
  const left = await sandboxesLeft(docker, h.instance);
  for (const c of left) await docker.getContainer(c.Id).remove({ force: true });
  expect(left.map((c) => c.Names)).toEqual([]);
});

afterAll(async () => {
  await h?.stop();
  for (const u of [allowed, other]) {
    u?.server.closeAllConnections();
    await new Promise((r) => u?.server.close(r));
  }
});

/** A shell line that fetches `url` through whatever proxy the sandbox was given, into `file`. */
const fetchTo = (url: string, file: string) =>
  `NODE_USE_ENV_PROXY=1 node -e 'fetch(process.argv[1]).then(async (r) => console.log("status", r.status, (await r.text()).trim()), (e) => console.log("error", String(e.cause?.message ?? e.message).slice(0, 80)))' ${url} > {{results_dir}}/${file} 2>/dev/null`;

interface Event {
  type: string;
  data: Record<string, any>;
}

async function runStreaming(runbook: string) {
  const res = await h.postJson(`${h.url}/v1/chat/completions`, runbookRequest(runbook, { stream: true }));
  expect(res.status).toBe(200);
  const chunks: any[] = [];
  for await (const ev of readSse(res.body!)) {
    if (ev.comment !== undefined) continue;
    if (ev.data === '[DONE]') break;
    chunks.push(JSON.parse(ev.data));
  }
  const last = chunks.at(-1);
  const id = last.jetty_metadata.trajectory_id as string;
  const trajectory = (await (await h.fetch(`${h.url}/v1/runs/${id}/trajectory`)).json()) as {
    events: Event[];
  };
  const artifact = async (name: string) =>
    (await (await h.fetch(`${h.url}/v1/runs/${id}/artifacts/${name}`)).text()).trim();
  const reasoning = chunks.map((c) => c.choices?.[0]?.delta?.reasoning_content ?? '').join('');
  return { last, events: trajectory.events, artifact, reasoning };
}

describe('a claude-code run with an allow list', () => {
  it('reaches the allowed host through the proxy; another host and the metadata address are refused and recorded', async () => {
    const runbook = [
      '---',
      'agent: claude-code',
      'network:',
      '  allow: ["127.0.0.2", "169.254.169.254"]',
      '---',
      '# Fetch',
      '',
      '```simulate',
      '- run: mkdir -p {{results_dir}} && (env | grep -c "^HTTPS_PROXY=http://jetty:" || true) > {{results_dir}}/proxy-env.txt',
      `- run: ${fetchTo(`http://127.0.0.2:${allowed.port}/ok`, 'allowed.txt')}`,
      `- run: ${fetchTo(`http://127.0.0.3:${other.port}/nope`, 'other.txt')}`,
      `- run: ${fetchTo('http://169.254.169.254/latest/meta-data/', 'metadata.txt')}`,
      '- say: fetched',
      '```',
      '',
    ].join('\n');
    const otherHits = other.hits.length;
    const { last, events, artifact, reasoning } = await runStreaming(runbook);
    expect(last.jetty_metadata.status).toBe('completed');

    expect(await artifact('proxy-env.txt')).toBe('1');
    expect(await artifact('allowed.txt')).toBe('status 200 hello from 127.0.0.2');
    expect(await artifact('other.txt')).toMatch(/^error /);
    expect(await artifact('metadata.txt')).toMatch(/^error /);
    // Nothing reached the host off the list, and the proxy never dialled off loopback.
    expect(other.hits.length).toBe(otherHits);
    expect(allowed.hits).toContain('/ok');
    expect(dialed.filter((a) => !a.startsWith('127.'))).toEqual([]);

    const net = events.filter((e) => e.type === 'net.connect').map((e) => e.data);
    expect(net.map((d) => [d.host, d.outcome, d.code ?? null])).toEqual([
      ['127.0.0.2', 'allowed', null],
      ['127.0.0.3', 'refused', 'not_allowed'],
      ['169.254.169.254', 'refused', 'private_address'],
    ]);
    expect(net[0]).toMatchObject({ port: allowed.port, kind: 'connect', address: '127.0.0.2' });
    expect(net[0]!.bytes_down).toBeGreaterThan(0);
    expect(net[2]!.reason).toContain('a link-local (cloud metadata) address');

    expect(reasoning).toContain(`net: 127.0.0.2:${allowed.port} allowed`);
    expect(reasoning).toContain(`net: 127.0.0.3:${other.port} refused:`);
    expect(last.jetty_metadata.network).toMatchObject({
      policy: 'allowlist',
      allow: ['127.0.0.2', '169.254.169.254'],
      connections: 3,
      allowed: 1,
      refused: 2,
    });
    const rec = (await (
      await h.fetch(`${h.url}/v1/runs/${last.jetty_metadata.trajectory_id}`)
    ).json()) as any;
    expect(rec.network).toEqual(last.jetty_metadata.network);

    // The operator sees the same decisions in /metrics (an `all` process serves the worker's too).
    const metrics = await (await fetch(`${h.url}/metrics`)).text();
    const count = (outcome: string) =>
      Number(
        new RegExp(`^jetty_egress_connections_total\\{outcome="${outcome}"\\} (\\d+)$`, 'm').exec(
          metrics,
        )?.[1],
      );
    expect(count('allowed')).toBeGreaterThanOrEqual(1);
    expect(count('refused')).toBeGreaterThanOrEqual(2);
  }, 180_000);
});

describe('a claude-code run with policy none', () => {
  it('has no proxy variables, connects nowhere, and is told its install step needs the network', async () => {
    const runbook = [
      '---',
      'agent: claude-code',
      'network: none',
      '---',
      '# Fetch',
      '',
      '```bash',
      'pip install requests',
      '```',
      '',
      '```simulate',
      '- run: mkdir -p {{results_dir}} && (env | grep -ci "_proxy=" || true) > {{results_dir}}/proxy-env.txt',
      `- run: ${fetchTo(`http://127.0.0.2:${allowed.port}/none`, 'allowed.txt')}`,
      '- say: tried',
      '```',
      '',
    ].join('\n');
    const { last, events, artifact } = await runStreaming(runbook);
    expect(last.jetty_metadata.status).toBe('completed');
    expect(await artifact('proxy-env.txt')).toBe('0');
    expect(await artifact('allowed.txt')).toMatch(/^error /);
    expect(allowed.hits).not.toContain('/none');
    expect(events.filter((e) => e.type === 'net.connect')).toEqual([]);
    expect(last.jetty_metadata.network).toMatchObject({ policy: 'none', connections: 0 });
    // On the default (lean) environment pip is missing as well: both are said, each once.
    expect(last.jetty_metadata.warnings.map((w: { code: string }) => w.code).sort()).toEqual([
      'environment_missing',
      'network_needed',
    ]);
  }, 180_000);
});
