import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { request } from 'node:http';
import path from 'node:path';
import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GATEWAY_SOCKET_NAME } from '../../src/sandbox/driver.js';
import { type Harness, runbookRequest, startHarness, waitFor } from '../support/harness.js';
import { containersOfRun, isUnclaimedWarm } from '../support/sandboxes.js';
import { readSse } from '../support/sse.js';

// Warm sandboxes end to end: the real server and Docker, the real claude CLI waiting for its prompt
// in a started sandbox, the simulated provider. A run takes one over and is the only run it ever
// serves; what a warm sandbox holds before that is nobody's; runs it cannot fit start cold.
const docker = new Dockerode();
const SERVER = path.resolve(import.meta.dirname, '../../dist/src/main/server.js');
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ env: { WARM_POOL_SIZE: '1', WARM_POOL_RUNTIMES: 'claude-code' } });
}, 120_000);

afterAll(async () => {
  // stop() also checks that the worker removed its warm sandboxes.
  await h?.stop();
}, 120_000);

const HELLO = [
  '---',
  'agent: claude-code',
  '---',
  '# Hello',
  '',
  '```simulate',
  '- run: mkdir -p {{results_dir}} && printf hi > {{results_dir}}/hello.txt',
  '- say: wrote hello.txt',
  '```',
  '',
].join('\n');

const SLOW = HELLO.replace('- say: wrote hello.txt', '- sleep_ms: 60000\n- say: late');

async function warmOf(instance: string): Promise<Dockerode.ContainerInfo[]> {
  const all = await docker.listContainers({ all: true, filters: { label: [`jetty.instance=${instance}`] } });
  return all.filter(isUnclaimedWarm);
}

const DEFAULT_IMAGE = 'jetty/env-lean:1';

/**
 * Waits until the default snapshot's pool holds a ready warm sandbox (its CLI started and waiting):
 * the one the next run of HELLO takes. (Another image's pool being ready says nothing of it: a
 * taken sandbox is replaced only once its run got going.)
 */
async function warmReady(): Promise<Dockerode.ContainerInfo> {
  await waitFor(
    async () => (h.server.worker!.warmStats()[`claude-code@${DEFAULT_IMAGE}`]?.ready ?? 0) > 0,
    60_000,
    'a warm sandbox to be ready',
  );
  const w = (await warmOf(h.instance)).find((c) => c.Image === DEFAULT_IMAGE);
  return w!;
}

interface Ev {
  id: string;
  type: string;
  data: Record<string, any>;
}

async function runToEnd(body: unknown): Promise<{ runId: string; events: Ev[] }> {
  const res = await h.postJson(`${h.url}/v1/chat/completions`, body);
  expect(res.status).toBe(200);
  let runId = '';
  const events: Ev[] = [];
  for await (const ev of readSse(res.body!)) {
    if (ev.comment !== undefined || ev.data === '[DONE]') continue;
    const chunk = JSON.parse(ev.data);
    runId ||= chunk.jetty_metadata?.trajectory_id;
    if (chunk.jetty_event) events.push(chunk.jetty_event);
  }
  return { runId, events };
}

const started = (events: Ev[]) => events.find((e) => e.type === 'run.started')!.data;

describe('warm sandboxes', () => {
  it('a run takes over a warm sandbox, it serves that run only, and is gone after it', async () => {
    const warm = await warmReady();
    const first = await runToEnd(runbookRequest(HELLO));
    expect(first.events.at(-1)?.type).toBe('run.completed');
    expect(started(first.events)).toMatchObject({ warm: true, sandbox_id: warm.Id });
    const art = await h.fetch(`${h.url}/v1/runs/${first.runId}/artifacts/hello.txt`);
    expect(await art.text()).toBe('hi');
    await waitFor(async () => (await containersOfRun(docker, first.runId)).length === 0, 10_000, 'removal');

    // The next run gets another sandbox: the pool refilled; none is ever used twice.
    const next = await warmReady();
    expect(next.Id).not.toBe(warm.Id);
    const second = await runToEnd(runbookRequest(HELLO));
    expect(started(second.events)).toMatchObject({ warm: true, sandbox_id: next.Id });
    expect(second.events.at(-1)?.type).toBe('run.completed');
  }, 150_000);

  it('holds no run secret: a run with one starts cold, and the waiting CLI’s token opens nothing', async () => {
    const warm = await warmReady();
    const secret = 'sekret-value-9f2c71';
    await h.setEnv({ DEPLOY_TOKEN: secret });
    const withSecret = HELLO.replace(
      '---\n# Hello',
      'secrets:\n  DEPLOY_TOKEN: { required: true }\n---\n# Hello',
    );
    const run = await runToEnd(runbookRequest(withSecret));
    expect(run.events.at(-1)?.type).toBe('run.completed');
    expect(started(run.events).warm).toBe(false);

    // Every process of the warm sandbox, its CLI included: the secret is in none of them.
    const environ = await execIn(warm.Id, [
      'sh',
      '-c',
      'cat /proc/[0-9]*/environ 2>/dev/null | tr "\\0" "\\n"',
    ]);
    expect(environ).toContain('ANTHROPIC_API_KEY=jrt_');
    expect(environ).not.toContain(secret);
    // The token it was started with is unknown to the gateway until a run claims the sandbox.
    const token = /ANTHROPIC_API_KEY=(jrt_[0-9a-f]+)/.exec(environ)![1]!;
    const status = await gatewayStatus(token);
    expect(status).toBe(401);
    await h.setEnv({ DEPLOY_TOKEN: null });
  }, 150_000);

  it('keeps a pool per environment image: the first run in another snapshot starts cold, the next is warm', async () => {
    const image = 'jetty/env-python312-uv:1';
    const inUv = HELLO.replace('agent: claude-code', 'agent: claude-code\nsnapshot: python312-uv');
    await warmReady();
    const a = await runToEnd(runbookRequest(inUv));
    expect(a.events.at(-1)?.type).toBe('run.completed');
    expect(started(a.events).warm).toBe(false);
    await waitFor(
      async () => (h.server.worker!.warmStats()[`claude-code@${image}`]?.ready ?? 0) > 0,
      60_000,
      'a warm sandbox of python312-uv',
    );
    const uv = (await warmOf(h.instance)).find((c) => c.Image === image);
    expect(uv).toBeDefined();
    const b = await runToEnd(runbookRequest(inUv));
    expect(b.events.at(-1)?.type).toBe('run.completed');
    expect(started(b.events)).toMatchObject({ warm: true, sandbox_id: uv!.Id });
    const rec = (await (await h.fetch(`${h.url}/v1/runs/${b.runId}`)).json()) as { image: string };
    expect(rec.image).toBe(image);
    // The default snapshot's pool is untouched by runs of another image.
    expect(h.server.worker!.warmStats()[`claude-code@${DEFAULT_IMAGE}`]?.ready).toBe(1);
  }, 150_000);

  it('a run on another model starts cold; the pool turns to that model and the next such run is warm', async () => {
    await warmReady();
    const other = { model: 'claude-haiku-4-5' };
    const a = await runToEnd(runbookRequest(HELLO, other));
    expect(a.events.at(-1)?.type).toBe('run.completed');
    expect(started(a.events).warm).toBe(false);
    await warmReady();
    const b = await runToEnd(runbookRequest(HELLO, other));
    expect(b.events.at(-1)?.type).toBe('run.completed');
    expect(started(b.events).warm).toBe(true);
  }, 150_000);

  it('cancel stops a run on a warm sandbox as on any other, and its sandbox goes', async () => {
    await warmReady();
    const res = await h.postJson(
      `${h.url}/v1/chat/completions`,
      runbookRequest(SLOW, { model: 'claude-haiku-4-5', stream: false, jetty: { timeout_hint: 0 } }),
    );
    const runId = ((await res.json()) as { jetty_metadata: { trajectory_id: string } }).jetty_metadata
      .trajectory_id;
    const events = async () =>
      ((await (await h.fetch(`${h.url}/v1/runs/${runId}/trajectory`)).json()) as { events: Ev[] }).events;
    await waitFor(
      async () => (await events()).some((e) => e.type === 'usage'),
      60_000,
      'the first model call',
    );
    expect((await events()).find((e) => e.type === 'run.started')?.data.warm).toBe(true);
    const t0 = Date.now();
    await h.postJson(`${h.url}/v1/runs/${runId}/cancel`, {});
    const end = await waitFor(
      async () => {
        const r = (await (await h.fetch(`${h.url}/v1/runs/${runId}`)).json()) as { status: string };
        return r.status === 'cancelled' ? r : undefined;
      },
      30_000,
      'the run to be cancelled',
    );
    expect(end.status).toBe('cancelled');
    expect(Date.now() - t0).toBeLessThan(20_000);
    await waitFor(async () => (await containersOfRun(docker, runId)).length === 0, 10_000, 'removal');
  }, 150_000);

  it('a timeout ends a run on a warm sandbox as any other: failed, sandbox gone, partial results kept', async () => {
    const slow = HELLO.replace('- say: wrote hello.txt', '- sleep_ms: 60000\n- say: never');
    const timed = () =>
      h.postJson(
        `${h.url}/v1/chat/completions`,
        runbookRequest(slow, { stream: false, jetty: { timeout_sec: 6 } }),
      );
    // The first such run starts cold (another deadline) and turns the pool to it; the next is warm.
    await warmReady();
    expect((await timed()).status).toBe(424);
    await warmReady();
    const res = await timed();
    expect(res.status).toBe(424);
    const body = (await res.json()) as { error: { code: string }; jetty_metadata: { trajectory_id: string } };
    expect(body.error.code).toBe('timeout');
    const runId = body.jetty_metadata.trajectory_id;
    const trajectory = (await (await h.fetch(`${h.url}/v1/runs/${runId}/trajectory`)).json()) as {
      events: Ev[];
    };
    expect(trajectory.events.find((e) => e.type === 'run.started')?.data.warm).toBe(true);
    const rec = (await (await h.fetch(`${h.url}/v1/runs/${runId}`)).json()) as {
      status: string;
      error: { code: string };
    };
    expect(rec).toMatchObject({ status: 'failed', error: { code: 'timeout' } });
    const part = await h.fetch(`${h.url}/v1/runs/${runId}/artifacts/hello.txt`);
    expect(await part.text()).toBe('hi');
    await waitFor(async () => (await containersOfRun(docker, runId)).length === 0, 10_000, 'removal');
  }, 150_000);
});

describe('a worker that dies with warm sandboxes', () => {
  let child: ChildProcess | undefined;
  afterAll(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
  });

  it('leaks none: another worker of the deployment removes them once the dead one’s mark lapses', async () => {
    const before = new Set((await warmOf(h.instance)).map((c) => c.Id));
    const file = path.join(h.dataDir, 'doomed-worker.log');
    const fd = openSync(file, 'a');
    child = spawn(process.execPath, [SERVER, '--role', 'worker'], {
      env: {
        PATH: process.env.PATH ?? '',
        REDIS_URL: h.redis.url,
        JETTY_KEY_PREFIX: h.instance,
        DATA_DIR: h.dataDir,
        INSTANCE_NAME: h.instance,
        WORKER_HTTP_PORT: '0',
        WARM_POOL_SIZE: '1',
        WARM_POOL_RUNTIMES: 'claude-code',
        // Its start-up survey would leave probe containers behind when it is killed.
        ENVIRONMENT_SURVEY: 'false',
      },
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    const theirs = await waitFor(
      async () => {
        const w = (await warmOf(h.instance)).filter((c) => !before.has(c.Id));
        return w.length > 0 ? w : undefined;
      },
      60_000,
      'the second worker’s warm sandbox',
    );
    child.kill('SIGKILL');
    // The harness's own worker sweeps every 5 s; the dead worker's mark lapses after 15 s.
    await waitFor(
      async () => {
        const ids = new Set((await warmOf(h.instance)).map((c) => c.Id));
        return theirs.every((c) => !ids.has(c.Id));
      },
      40_000,
      'the dead worker’s warm sandboxes to be removed',
    );
  }, 120_000);
});

async function execIn(id: string, cmd: string[]): Promise<string> {
  const exec = await docker
    .getContainer(id)
    .exec({ Cmd: cmd, User: '1000:1000', AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve) => {
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', resolve);
  });
  // Docker's multiplexed frames: 8-byte headers before each payload.
  const all = Buffer.concat(chunks);
  const out: Buffer[] = [];
  for (let i = 0; i + 8 <= all.length; ) {
    const size = all.readUInt32BE(i + 4);
    out.push(all.subarray(i + 8, i + 8 + size));
    i += 8 + size;
  }
  return Buffer.concat(out).toString('utf8');
}

/** What the worker's gateway answers a model call made with `token`. */
function gatewayStatus(token: string): Promise<number> {
  const socketPath = path.join(h.server.socketDir!, GATEWAY_SOCKET_NAME);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        path: '/v1/messages',
        method: 'POST',
        headers: { 'x-api-key': token, 'content-type': 'application/json' },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.end('{}');
  });
}
