import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import { afterAll, describe, expect, it } from 'vitest';
import { createSimulatedProvider } from '../../src/providers/simulated/index.js';
import { DockerSandboxDriver } from '../../src/sandbox/docker-driver.js';
import { type Harness, runbookRequest, startHarness, waitFor } from '../support/harness.js';

const docker = new Dockerode();
const RUNBOOK =
  '# Keys\n```simulate\n- run: mkdir -p /app/results && env > /app/results/env.txt\n- say: done\n```\n';

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

describe('provider keys stay out of the sandbox', () => {
  it('the gateway presents the real key upstream; the sandbox, events, trajectory and logs never hold it', async () => {
    const canary = `sk-ant-canary-${randomBytes(12).toString('hex')}`;
    const upstream = await fakeAnthropic();
    stops.push(() => new Promise((r) => upstream.server.close(r)));
    const logFile = path.join(tmpdir(), `jetty-keys-${randomBytes(4).toString('hex')}.log`);
    const h: Harness = await startHarness({
      env: { ANTHROPIC_API_KEY: canary, ANTHROPIC_UPSTREAM_URL: upstream.url },
      logFile,
    });
    stops.push(() => h.stop());

    const res = await h.postJson(
      `${h.url}/v1/chat/completions`,
      runbookRequest(RUNBOOK, { stream: false, jetty: { model_provider: 'anthropic' } }),
    );
    const body = (await res.json()) as { jetty_metadata: { trajectory_id: string; status: string } };
    expect(res.status).toBe(200);
    expect(body.jetty_metadata.status).toBe('completed');
    const runId = body.jetty_metadata.trajectory_id;

    // Every model call reached the upstream with the real key, and only the gateway sent it.
    const modelCalls = upstream.keys.filter((k) => k !== '');
    expect(modelCalls.length).toBeGreaterThanOrEqual(2);
    expect(new Set(modelCalls)).toEqual(new Set([canary]));

    // The agent dumped its whole environment into a result file: the key is not in it.
    const envFile = await (await h.fetch(`${h.url}/v1/runs/${runId}/artifacts/env.txt`)).text();
    expect(envFile).toContain('ANTHROPIC_API_KEY=jrt_');
    expect(envFile).not.toContain(canary);

    const trajectory = await (await h.fetch(`${h.url}/v1/runs/${runId}/trajectory`)).text();
    expect(trajectory).toContain('env.txt');
    expect(trajectory).not.toContain(canary);
    const record = await (await h.fetch(`${h.url}/v1/runs/${runId}`)).text();
    expect(record).not.toContain(canary);
    const logs = await readFile(logFile, 'utf8');
    expect(logs).toContain(runId);
    expect(logs).not.toContain(canary);
  });
});

describe('a worker that starts', () => {
  it('removes the sandboxes it owns whose runs are over or unknown', async () => {
    const instance = `orphan-${randomBytes(4).toString('hex')}`;
    // A sandbox left by a worker that died: its run is unknown to Redis.
    const leftover = await new DockerSandboxDriver({ docker, instance }).start({
      runId: `${instance}-lost`,
      image: 'jetty/runtime-claude-code:2.1.197',
      argv: ['sleep', '300'],
      env: { JETTY_FORWARDER: '0' },
      files: [],
      limits: { cpus: 0.5, memoryBytes: 128 * 1024 * 1024, pids: 64 },
      network: 'none',
      gatewaySocketDir: tmpdir(),
    });
    stops.push(() =>
      docker
        .getContainer(leftover.id)
        .remove({ force: true })
        .catch(() => undefined),
    );
    const h = await startHarness({ env: { INSTANCE_NAME: instance } });
    stops.push(() => h.stop());
    await waitFor(
      async () => (await docker.listContainers({ all: true, filters: { id: [leftover.id] } })).length === 0,
      5_000,
      'the orphaned sandbox to be removed',
    );
  });
});
