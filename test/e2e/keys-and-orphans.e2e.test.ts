import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import { afterAll, describe, expect, it } from 'vitest';
import { createSimulatedProvider } from '../../src/providers/simulated/index.js';
import { RunStore } from '../../src/queue/run-store.js';
import { DockerSandboxDriver } from '../../src/sandbox/docker-driver.js';
import { type Harness, runbookRequest, startHarness, waitFor } from '../support/harness.js';
import { dumpRedis } from '../support/redis.js';

const docker = new Dockerode();
/**
 * The canary runbook: it declares one secret, proves the sandbox got it (its sha256 goes to a
 * file), prints it (so the agent's own output holds it), and dumps the whole environment.
 */
const RUNBOOK = [
  '---',
  'secrets:',
  '  REPORT_TOKEN: { env: REPORT_TOKEN, description: "the report API token", required: true }',
  '---',
  '# Keys and secrets',
  '',
  'Use {{secrets.REPORT_TOKEN}} to call the report API.',
  '',
  '```simulate',
  '- run: mkdir -p /app/results && env > /app/results/env.txt && printf %s "$REPORT_TOKEN" | sha256sum > /app/results/token.sha256',
  '- run: echo "the token is $REPORT_TOKEN"',
  '- say: done',
  '```',
  '',
].join('\n');

/**
 * A stand-in for api.anthropic.com on loopback: it speaks Anthropic Messages (through the
 * simulated provider's protocol code) and records the key each request presented.
 */
function fakeAnthropic(): Promise<{ server: Server; url: string; keys: string[] }> {
  const keys: string[] = [];
  const sim = createSimulatedProvider({
    runbook: RUNBOOK,
    requiredOutputs: [],
    resultsDir: '/app/results',
    workdir: '/app',
  });
  const server = createServer(async (req: IncomingMessage, res) => {
    keys.push(String(req.headers['x-api-key'] ?? ''));
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const answer = await sim.fetch(
      new Request(`http://upstream${req.url}`, { method: req.method, body: body.length ? body : undefined }),
    );
    res.writeHead(answer.status, Object.fromEntries(answer.headers));
    res.end(Buffer.from(await answer.arrayBuffer()));
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, keys }),
    ),
  );
}

const stops: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const s of stops.reverse()) await s();
});

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

describe("a collection's provider key and secrets", () => {
  it('reach only where they must, after real runs through both APIs: a canary grep of everything else finds nothing', async () => {
    const keyCanary = `sk-ant-canary-${randomBytes(12).toString('hex')}`;
    const secretCanary = `secret-canary-${randomBytes(12).toString('hex')}`;
    const upstream = await fakeAnthropic();
    stops.push(() => new Promise((r) => upstream.server.close(r)));
    const logFile = path.join(tmpdir(), `jetty-keys-${randomBytes(4).toString('hex')}.log`);
    const h: Harness = await startHarness({ env: { ANTHROPIC_UPSTREAM_URL: upstream.url }, logFile });
    stops.push(() => h.stop());

    // Both set the way a user sets them: PATCH the collection's environment.
    const patch = await h.fetch(`${h.url}/api/v1/collections/${h.collection}/environment`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        environment_variables: { ANTHROPIC_API_KEY: keyCanary, REPORT_TOKEN: secretCanary },
      }),
    });
    expect(patch.status).toBe(200);

    // One run through /v1/chat/completions, one through /api/v1/run.
    const chat = await h.postJson(
      `${h.url}/v1/chat/completions`,
      runbookRequest(RUNBOOK, { stream: false, jetty: { model_provider: 'anthropic', task: 'keys' } }),
    );
    const body = (await chat.json()) as { jetty_metadata: { trajectory_id: string; status: string } };
    expect(chat.status).toBe(200);
    expect(body.jetty_metadata.status).toBe('completed');
    const workflow = {
      init_params: { agent: 'claude-code', model_provider: 'anthropic', instruction: RUNBOOK },
    };
    expect(
      (await h.postJson(`${h.url}/api/v1/tasks/${h.collection}`, { name: 'keys', workflow })).status,
    ).toBe(201);
    const fd = new FormData();
    fd.append('init_params', '{}');
    const started = await h.fetch(`${h.url}/api/v1/run/${h.collection}/keys`, { method: 'POST', body: fd });
    expect(started.status).toBe(200);
    const wid = ((await started.json()) as { workflow_id: string }).workflow_id;
    const apiRunId = wid.slice(wid.lastIndexOf('--') + 2);
    await waitFor(
      async () => {
        const r = await h.fetch(`${h.url}/api/v1/db/trajectory/${h.collection}/keys/${apiRunId}`);
        return ((await r.json()) as { status: string }).status === 'completed';
      },
      60_000,
      'the /api/v1 run to complete',
    );

    // Every model call reached the upstream with the collection's key, and only the gateway sent it.
    const modelCalls = upstream.keys.filter((k) => k !== '');
    expect(modelCalls.length).toBeGreaterThanOrEqual(4);
    expect(new Set(modelCalls)).toEqual(new Set([keyCanary]));

    const places: Record<string, string> = {};
    for (const runId of [body.jetty_metadata.trajectory_id, apiRunId]) {
      // The sandbox had the secret (its hash proves it) and never the provider key.
      const sha = await (await h.fetch(`${h.url}/v1/runs/${runId}/artifacts/token.sha256`)).text();
      expect(sha.split(' ')[0]).toBe(createHash('sha256').update(secretCanary).digest('hex'));
      const envFile = await (await h.fetch(`${h.url}/v1/runs/${runId}/artifacts/env.txt`)).text();
      expect(envFile).toContain('ANTHROPIC_API_KEY=jrt_');
      expect(envFile).not.toContain(keyCanary);

      const get = async (p: string) => (await h.fetch(`${h.url}${p}`)).text();
      places[`${runId} record`] = await get(`/v1/runs/${runId}`);
      places[`${runId} events`] = await get(`/v1/runs/${runId}/events`);
      places[`${runId} trajectory`] = await get(`/v1/runs/${runId}/trajectory`);
      places[`${runId} artifacts listing`] = await get(`/v1/runs/${runId}/artifacts`);
      places[`${runId} jetty trajectory`] = await get(`/api/v1/db/trajectory/${h.collection}/keys/${runId}`);
      places[`${runId} logs`] = await get(`/api/v1/workflows-logs/${h.collection}-keys--${runId}`);
      // The agent printed the secret: the event shows where, redacted.
      expect(places[`${runId} events`]).toContain('the token is [redacted:REPORT_TOKEN]');
    }
    places['run list'] = await (await h.fetch(`${h.url}/v1/runs?limit=100`)).text();
    places['trajectory list'] = await (
      await h.fetch(`${h.url}/api/v1/db/trajectories/${h.collection}/keys?limit=10&page=1`)
    ).text();
    places.environment = await (
      await h.fetch(`${h.url}/api/v1/collections/${h.collection}/environment`)
    ).text();
    places['server log'] = await readFile(logFile, 'utf8');
    places.redis = await dumpRedis(h.redis.url);
    // Everything the server stored on disk but the agent's own files: the artifacts
    // (runs/<id>/files-<attempt>/) and the copy of /app kept for the conversation's next turn
    // (conversation/0); env.txt holds the secret because the runbook wrote it there. The CLI's
    // session files kept beside them are searched.
    const blobs = path.join(h.dataDir, 'blobs');
    let sessionFiles = 0;
    for (const f of await filesUnder(blobs)) {
      const [top, , dir, sub] = path.relative(blobs, f).split(path.sep);
      if (top === 'runs' && dir?.startsWith('files-')) continue;
      if (top === 'runs' && dir === 'conversation' && sub === '0') continue;
      places[f] = await readFile(f, 'utf8');
      if (dir === 'conversation' && /^[1-9]/.test(sub ?? '')) sessionFiles++;
    }
    // The chat run kept claude's session (its transcript holds the printed token, redacted).
    expect(sessionFiles).toBeGreaterThan(0);
    expect(places['server log']).toContain(apiRunId);
    for (const [where, text] of Object.entries(places)) {
      expect(text.includes(keyCanary), `provider key in ${where}`).toBe(false);
      expect(text.includes(secretCanary), `secret in ${where}`).toBe(false);
    }
  });
});

describe('orphaned sandboxes', () => {
  it('a worker removes the sandboxes of its deployment whose runs are over or unknown', async () => {
    const instance = `orphan-${randomBytes(4).toString('hex')}`;
    const h = await startHarness({ env: { INSTANCE_NAME: instance } });
    stops.push(() => h.stop());
    const deployment = (await h.server.redis.get(`${h.instance}:deployment`))!;
    expect(deployment).toBeTruthy();
    // Sandboxes left by a worker that died, from another process (another instance name) of the
    // same deployment, and one of another deployment on the same engine: its run is unknown here too.
    const leftover = (dep: string, runId = `${instance}-lost-${randomBytes(2).toString('hex')}`) =>
      new DockerSandboxDriver({
        docker,
        instance: `${instance}-gone`,
        deployment: { id: dep, keyPrefix: h.instance },
      }).start({
        runId,
        image: 'jetty/env-lean:1',
        agentImage: 'jetty/agent-claude-code:2.1.197',
        argv: ['sleep', '300'],
        env: { JETTY_FORWARDER: '0' },
        files: [],
        limits: { cpus: 0.5, memoryBytes: 128 * 1024 * 1024, pids: 64, diskBytes: 64 * 1024 * 1024 },
        gatewaySocketDir: tmpdir(),
      });
    // Two runs still `running`: one whose job's lock a live worker holds, one whose lock is gone.
    const running = async (locked: boolean) => {
      const id = `${instance}-run-${locked ? 'held' : 'lapsed'}`;
      const rec = RunStore.newRecord({
        id,
        agent: 'claude-code',
        model: 'claude-sonnet-4-6',
        provider: 'simulated',
        collection: h.collection,
        task: null,
        timeout_sec: 60,
      });
      await h.server.runs.store.create({ ...rec, status: 'running' });
      if (locked) await h.server.redis.set(`${h.instance}:bull:runs:${id}:lock`, 'a-token', 'PX', 60_000);
      return leftover(deployment, id);
    };
    const ours = await leftover(deployment);
    const theirs = await leftover(`${deployment}-other`);
    const held = await running(true);
    const lapsed = await running(false);
    for (const c of [ours, theirs, held, lapsed]) {
      stops.push(() =>
        docker
          .getContainer(c.id)
          .remove({ force: true })
          .catch(() => undefined),
      );
    }
    // The sweep runs every SANDBOX_SWEEP_MS (5 s by default).
    const exists = async (id: string) =>
      (await docker.listContainers({ all: true, filters: { id: [id] } })).length > 0;
    await waitFor(
      async () => !(await exists(ours.id)) && !(await exists(lapsed.id)),
      10_000,
      'the orphaned sandboxes to be removed',
    );
    expect(await exists(theirs.id)).toBe(true);
    expect(await exists(held.id)).toBe(true);
  });
});
