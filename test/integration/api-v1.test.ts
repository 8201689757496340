import { createHmac } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { JettyApiError, JettyAuthError, JettyClient, JettyNotFoundError } from '@jetty/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, startHarness, waitFor } from '../support/harness.js';
import { claudeLines, promptOf, ScriptedDriver } from '../support/scripted-driver.js';
import { zipOf } from '../support/zip.js';

// Jetty's /api/v1 on real Redis and a real server, driven by the real @jetty/sdk where it has a
// method and by fetch where it has none (or where the input is one no client would send). The
// sandbox is scripted here; test/e2e/jetty-clients runs the same clients through real agents.
const RUNBOOK = [
  '---',
  'primary_outputs: [report.md]',
  '---',
  '# Report',
  '',
  'Write a report for {{name}} to /app/results/report.md.',
  '',
].join('\n');
const WORKFLOW = {
  steps: ['run'],
  step_configs: { run: { activity: 'runbook' } },
  init_params: {
    agent: 'claude-code',
    model_provider: 'simulated',
    instruction: RUNBOOK,
    vars: { name: 'x' },
  },
};

let h: Harness;
let sdk: JettyClient;
let other: { collection: string; key: string; auth: Record<string, string> };
// A runbook that says SLOW takes 20 s (long enough to cancel); the others a moment.
const driver = new ScriptedDriver((spec) =>
  claudeLines({
    steps: 1,
    delayMs: promptOf(spec).includes('SLOW') ? 20_000 : 50,
    text: 'report written',
  }),
);
const ADMIN_TOKEN = 'admin-token-of-this-test-0123456789abcdef';
const c = () => h.collection;

beforeAll(async () => {
  h = await startHarness({
    driver,
    env: {
      MAX_UPLOAD_BYTES: '64k',
      MAX_UPLOAD_FILES: '3',
      JETTY_ADMIN_TOKEN: ADMIN_TOKEN,
      // The webhook receiver of a test listens on loopback.
      NETWORK_ALLOW_PRIVATE: '127.0.0.1',
    },
  });
  sdk = new JettyClient({ apiUrl: h.url, token: h.key, maxRetries: 0 });
  other = await h.addCollection('other-team');
  await sdk.createTask(c(), 'report', WORKFLOW, 'weekly report');
});

afterAll(async () => {
  await h?.stop();
});

/** A multipart run request as curl or a browser would send it. */
function form(
  fields: Record<string, string>,
  files: Array<{ name: string; data: string | Uint8Array }> = [],
) {
  const fd = new FormData();
  for (const [k, v] of Object.entries(fields)) fd.append(k, v);
  for (const f of files) fd.append('files', new Blob([f.data]), f.name);
  return fd;
}

async function post(url: string, body: FormData | string, headers: Record<string, string> = h.auth) {
  const res = await fetch(`${h.url}${url}`, { method: 'POST', headers, body });
  return { status: res.status, body: (await res.json()) as any };
}

/** GET with the path exactly as written: no dot-segment collapsing, no re-encoding. */
function rawGet(pathAsIs: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(h.url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ hostname, port, path: pathAsIs, headers: h.auth }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(path.join(e.parentPath, e.name));
  }
  return out;
}

describe('tasks', () => {
  it('create, get, list, update, delete, with Jetty’s shapes and a JSON body on every answer', async () => {
    const task = (await sdk.getTask(c(), 'report')) as any;
    expect(task).toMatchObject({ name: 'report', description: 'weekly report', workflow: WORKFLOW });
    expect(((await sdk.listTasks(c())) as any[]).map((t) => t.name)).toEqual(['report']);
    await sdk.createTask(c(), 'temp', WORKFLOW);
    expect(await sdk.updateTask(c(), 'temp', { description: 'changed' })).toMatchObject({
      description: 'changed',
    });
    expect(await sdk.deleteTask(c(), 'temp')).toEqual({ deleted: true, name: 'temp' });
    await expect(sdk.getTask(c(), 'temp')).rejects.toBeInstanceOf(JettyNotFoundError);
  });

  it('serves the SDK with a base URL ending in "/" (it then asks for //api/v1/...)', async () => {
    const slashed = new JettyClient({ apiUrl: `${h.url}/`, token: h.key, maxRetries: 0 });
    expect(((await slashed.listTasks(c())) as any[]).map((t) => t.name)).toContain('report');
    expect(await slashed.getTask(c(), 'report')).toMatchObject({ name: 'report' });
  });

  it('refuses a step that is not a runbook, naming what is supported', async () => {
    const bad = { ...WORKFLOW, step_configs: { run: { activity: 'completion' } } };
    const err = (await sdk.createTask(c(), 'bad', bad).catch((e) => e)) as JettyApiError;
    expect(err).toBeInstanceOf(JettyApiError);
    expect(err.status).toBe(400);
    const message = JSON.parse(err.body).error.message as string;
    expect(message).toContain('workflow.step_configs.run.activity');
    expect(message).toContain('only "runbook" steps');
    const two = (await sdk
      .createTask(c(), 'bad', { ...WORKFLOW, steps: ['a', 'b'] })
      .catch((e) => e)) as JettyApiError;
    expect(two.status).toBe(400);
    expect(two.body).toContain('one step');
  });

  it('a huge refused value is quoted cut short: the error stays small and still names the field', async () => {
    const huge = { ...WORKFLOW, step_configs: { run: { activity: 'a'.repeat(300_000) } } };
    const err = (await sdk.createTask(c(), 'huge', huge).catch((e) => e)) as JettyApiError;
    expect(err.status).toBe(400);
    expect(err.body.length).toBeLessThan(1000);
    const { error } = JSON.parse(err.body);
    expect(error).toMatchObject({
      code: 'unsupported_activity',
      param: 'workflow.step_configs.run.activity',
    });
    expect(error.message).toMatch(/is "a{60}…"; this server runs only "runbook" steps/);
  });

  it('a name taken is a 409', async () => {
    const err = (await sdk.createTask(c(), 'report', WORKFLOW).catch((e) => e)) as JettyApiError;
    expect(err.status).toBe(409);
  });
});

describe('runs', () => {
  it('runAndWait: the trajectory is readable at once, completes, lists, takes labels that stay', async () => {
    const polled: string[] = [];
    const traj = (await sdk.runAndWait(
      c(),
      'report',
      { vars: { name: 'sdk' } },
      {
        pollMs: 100,
        timeoutMs: 30_000,
        onPoll: (t) => polled.push(t.status),
      },
    )) as any;
    expect(polled[0]).toMatch(/pending|running/);
    expect(traj.status).toBe('completed');
    expect(traj.name).toBe(`${c()}/report`);
    expect(traj.init_params.vars).toEqual({ name: 'sdk', results_dir: '/app/results' });
    expect(traj.steps.run.outputs.success).toBe(true);
    expect(traj.steps.run.outputs.usage.total_tokens).toBeGreaterThan(0);
    expect(traj.completed_steps).toEqual(['run']);
    const label = await sdk.addLabel(c(), 'report', traj.trajectory_id, 'review', 'ok', 'me@example.com');
    expect(label).toMatchObject({ key: 'review', value: 'ok', author: 'me@example.com' });
    const again = (await sdk.getTrajectory(c(), 'report', traj.trajectory_id)) as any;
    expect(again.labels).toEqual([
      expect.objectContaining({ key: 'review', value: 'ok', author: 'me@example.com' }),
    ]);
    const record = (await (await h.fetch(`${h.url}/v1/runs/${traj.trajectory_id}`)).json()) as any;
    expect(record.labels).toEqual({ review: 'ok' });
    const list = (await sdk.listTrajectories(c(), 'report', 10, 1)) as any;
    expect(list.trajectories.map((t: { trajectory_id: string }) => t.trajectory_id)).toContain(
      traj.trajectory_id,
    );
    expect(list).toMatchObject({ page: 1, limit: 10 });
  });

  it('webhook_url and webhook_secret on the form: the end of the run is POSTed, signed, as its trajectory', async () => {
    const got: Array<{ headers: Record<string, unknown>; body: string }> = [];
    const receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        got.push({ headers: req.headers, body });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
      const started = (await sdk.runWorkflow(
        c(),
        'report',
        {},
        { webhookUrl: url, webhookSecret: 'whsec_t' },
      )) as any;
      const id = started.workflow_id.split('--').pop();
      const [hook] = await waitFor(async () => got.length > 0 && got, 15_000, 'the webhook');
      expect(hook!.headers['x-mise-trajectory-id']).toBe(id);
      const want = createHmac('sha256', 'whsec_t')
        .update(`${hook!.headers['x-mise-timestamp']}.${hook!.body}`)
        .digest('hex');
      expect(hook!.headers['x-mise-signature']).toBe(want);
      const payload = JSON.parse(hook!.body);
      expect(payload).toMatchObject({
        trajectory_id: id,
        status: 'completed',
        name: `${c()}/report`,
        webhook_url: url,
      });
      // Exactly the trajectory GET /api/v1/db/trajectory answers for the ended run.
      expect(payload).toEqual(await sdk.getTrajectory(c(), 'report', id));
      expect(hook!.body).not.toContain('whsec_t');
    } finally {
      receiver.close();
    }
  });

  it('run-sync answers when the run has ended, with the whole trajectory', async () => {
    const res = (await sdk.runWorkflowSync(c(), 'report', { vars: { name: 'sync' } })) as any;
    expect(res.workflow_id).toMatch(new RegExp(`^${c()}-report--[0-9a-f]{16}$`));
    expect(res.trajectory.status).toBe('completed');
    expect(res.trajectory.init_params.vars).toEqual({ name: 'sync', results_dir: '/app/results' });
    expect(res.result.success).toBe(true);
  });

  it('lists trajectories page by page, newest first', async () => {
    const all = (await sdk.listTrajectories(c(), 'report', 100, 1)) as any;
    expect(all.total).toBeGreaterThanOrEqual(2);
    const p1 = (await sdk.listTrajectories(c(), 'report', 1, 1)) as any;
    const p2 = (await sdk.listTrajectories(c(), 'report', 1, 2)) as any;
    expect(p1.trajectories[0].trajectory_id).toBe(all.trajectories[0].trajectory_id);
    expect(p2.trajectories[0].trajectory_id).toBe(all.trajectories[1].trajectory_id);
    expect(p1.has_more).toBe(true);
    expect(Date.parse(p1.trajectories[0].created)).toBeGreaterThanOrEqual(
      Date.parse(p2.trajectories[0].created),
    );
    const bad = await h.fetch(`${h.url}/api/v1/db/trajectories/${c()}/report?limit=0&page=1`);
    expect(bad.status).toBe(400);
  });

  it('the statuses batch cancels a running run, and says so per id', async () => {
    await sdk.createTask(c(), 'slow', {
      ...WORKFLOW,
      init_params: { ...WORKFLOW.init_params, instruction: '# SLOW\n\nTake your time.\n' },
    });
    const started = (await sdk.runWorkflow(c(), 'slow', {})) as any;
    const id = started.workflow_id.split('--').pop();
    await waitFor(
      async () => ((await sdk.getTrajectory(c(), 'slow', id)) as any).status === 'running',
      10_000,
      'running',
    );
    const res = await fetch(`${h.url}/api/v1/trajectory/${c()}/slow/statuses`, {
      method: 'POST',
      headers: { ...h.auth, 'content-type': 'application/json' },
      body: JSON.stringify({ [id]: 'cancelled', '0123456789abcdef': 'cancelled', [`${id}x`]: 'completed' }),
    });
    const body = (await res.json()) as any;
    expect(res.status).toBe(200);
    expect(body.updated_count).toBe(1);
    expect(body.results[0]).toMatchObject({ trajectory_id: id, new_status: 'cancelled', updated: true });
    expect(body.results[1]).toMatchObject({ updated: false, error: 'not found' });
    expect(body.results[2].updated).toBe(false);
    await waitFor(
      async () => ((await sdk.getTrajectory(c(), 'slow', id)) as any).status === 'cancelled',
      10_000,
      'cancelled',
    );
    const logs = (await sdk.getWorkflowLogs(started.workflow_id)) as any;
    expect(logs.status).toBe('cancelled');
    expect(logs.events.map((e: { type: string }) => e.type)).toEqual(
      expect.arrayContaining(['run.queued', 'run.started', 'run.cancelled']),
    );
    expect(logs.events.every((e: { level: string }) => ['info', 'warning', 'error'].includes(e.level))).toBe(
      true,
    );
  });

  it('init_params that is not JSON, or not an object, is a 400 naming it; nothing is queued', async () => {
    const before = await h.jobsEnqueued();
    for (const bad of ['{"vars":', '[1,2]', '"text"']) {
      const res = await post(`/api/v1/run/${c()}/report`, form({ init_params: bad }));
      expect(res.status, bad).toBe(400);
      expect(res.body.error.param).toBe('init_params');
    }
    expect(await h.jobsEnqueued()).toBe(before);
  });

  it('a JSON body is refused: runs are multipart, as on Jetty', async () => {
    const res = await fetch(`${h.url}/api/v1/run/${c()}/report`, {
      method: 'POST',
      headers: { ...h.auth, 'content-type': 'application/json' },
      body: JSON.stringify({ init_params: {} }),
    });
    expect(res.status).toBe(415);
    expect(((await res.json()) as any).error.message).toContain('multipart/form-data');
  });

  it('malformed multipart is a 400, not a server error', async () => {
    const res = await fetch(`${h.url}/api/v1/run/${c()}/report`, {
      method: 'POST',
      headers: { ...h.auth, 'content-type': 'multipart/form-data; boundary=XYZ' },
      body: '--XYZ\r\nContent-Disposition: form-data; name="init_params"\r\n\r\n{}\r\n--XY',
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).error.code).toBe('invalid_multipart');
  });

  it('a pre-flight failure names the init_params field', async () => {
    const res = await post(
      `/api/v1/run/${c()}/report`,
      form({ init_params: JSON.stringify({ agent: 'nope' }) }),
    );
    expect(res.status).toBe(400);
    expect(res.body.error.param).toBe('init_params.agent');
    const missing = await post(
      `/api/v1/run/${c()}/report`,
      form({ init_params: JSON.stringify({ vars: { name: 1 } }) }),
    );
    expect(missing.status).toBe(400);
    expect(missing.body.error.param).toMatch(/^init_params\.vars/);
  });

  it('secret_params reach the sandbox for declared secrets and are in nothing stored', async () => {
    const canary = `sp-${Date.now()}-canary`;
    const runbook = `---\nsecrets:\n  TOKEN: { env: TOKEN, required: true }\n---\n# Uses TOKEN\n`;
    await sdk.createTask(c(), 'secretive', {
      ...WORKFLOW,
      init_params: { ...WORKFLOW.init_params, instruction: runbook },
    });
    const res = await post(
      `/api/v1/run/${c()}/secretive`,
      form({ init_params: '{}', secret_params: JSON.stringify({ TOKEN: canary, EXTRA: `${canary}-2` }) }),
    );
    expect(res.status).toBe(200);
    const id = res.body.workflow_id.split('--').pop();
    await waitFor(
      async () => ((await sdk.getTrajectory(c(), 'secretive', id)) as any).status === 'completed',
      10_000,
      'run',
    );
    const spec = driver.started.find((s) => s.runId === id)!;
    expect(spec.env.TOKEN).toBe(canary);
    expect(spec.env.EXTRA).toBeUndefined();
    const stored = JSON.stringify([
      await sdk.getTrajectory(c(), 'secretive', id),
      await (await h.fetch(`${h.url}/v1/runs/${id}/trajectory`)).json(),
      await (await h.fetch(`${h.url}/api/v1/workflows-logs/${res.body.workflow_id}`)).json(),
    ]);
    expect(stored).not.toContain(canary);
    expect(JSON.stringify(await (await import('../support/redis.js')).dumpRedis(h.redis.url))).not.toContain(
      canary,
    );
  });
});

describe('files', () => {
  it('uploads land in file_paths and the sandbox under /app/assets; names are made safe; zips unpacked', async () => {
    const zip = zipOf({ 'data/a.csv': 'a,b\n', 'data/.hidden': 'h', 'data\\win.txt': 'w' });
    const res = await post(
      `/api/v1/run/${c()}/report`,
      form({ init_params: '{}' }, [
        { name: '../../etc/passwd', data: 'not really' },
        { name: 'we"ird\nname;.csv', data: 'x' },
        { name: 'bundle.zip', data: zip },
      ]),
    );
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const paths: string[] = res.body.trajectory.init_params.file_paths;
    const rels = paths.map((p) => decodeURIComponent(p.split('/').slice(3).join('/')));
    // The client sent ../../etc/passwd; undici sent we"ird<LF>name;.csv as we%22ird%0Aname;.csv.
    expect(rels.sort()).toEqual(
      [
        'bundle/data/a.csv',
        'bundle/data/hidden',
        'bundle/data/win.txt',
        'passwd',
        'we_22ird_0Aname_.csv',
      ].sort(),
    );
    for (const p of paths) expect(p.startsWith(`${c()}/_uploads/`)).toBe(true);
    const id = res.body.workflow_id.split('--').pop();
    await waitFor(async () => driver.started.find((s) => s.runId === id), 10_000, 'sandbox');
    const spec = driver.started.find((s) => s.runId === id)!;
    const assets = spec.files.filter((f) => f.path.startsWith('/app/assets/')).map((f) => f.path);
    expect(assets.sort()).toEqual(rels.map((r) => `/app/assets/${r}`).sort());
    // Nothing was written outside the upload's own directory (a run's file being written beside
    // it, in the store's temporary directory, is another request's).
    const all = await filesUnder(path.join(h.dataDir, 'blobs'));
    expect(
      all.filter(
        (f) =>
          !f.includes(`${path.sep}uploads${path.sep}`) &&
          !f.includes(`${path.sep}runs${path.sep}`) &&
          !f.includes(`${path.sep}.partial-writes${path.sep}`),
      ),
    ).toEqual([]);
    // Each upload downloads by its key, with the caller's key only.
    const dl = await sdk.downloadFile(paths.find((p) => p.endsWith('a.csv'))!);
    expect(new TextDecoder().decode(dl.bytes)).toBe('a,b\n');
    const theirs = new JettyClient({ apiUrl: h.url, token: other.key, maxRetries: 0 });
    await expect(theirs.downloadFile(paths[0]!)).rejects.toBeInstanceOf(JettyNotFoundError);
  });

  it('a zip with an entry that climbs out is refused whole: a 400, and nothing of it is kept', async () => {
    // Uploads only: runs of earlier tests may still be writing their trajectories meanwhile.
    const uploadsDir = path.join(h.dataDir, 'blobs', 'uploads');
    const before = await filesUnder(uploadsDir).catch(() => []);
    for (const evil of ['../../escape.txt', '/abs/escape.txt']) {
      const zip = zipOf({ 'ok.txt': 'fine', [evil]: 'no' });
      const res = await post('/api/v1/sandbox/upload', form({}, [{ name: 'evil.zip', data: zip }]));
      expect(res.status, evil).toBe(400);
      expect(res.body.error.code).toBe('invalid_zip');
    }
    expect(await filesUnder(uploadsDir)).toEqual(before);
  });

  it('sandbox/upload answers {upload_id, file_paths, count}; a later run takes them by key', async () => {
    const res = await post('/api/v1/sandbox/upload', form({}, [{ name: 'in.txt', data: 'input' }]));
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ count: 1 });
    const run = await post(
      `/api/v1/run/${c()}/report`,
      form({ init_params: JSON.stringify({ file_paths: res.body.file_paths }) }),
    );
    expect(run.status).toBe(200);
    const id = run.body.workflow_id.split('--').pop();
    const spec = await waitFor(async () => driver.started.find((s) => s.runId === id), 10_000, 'sandbox');
    const file = spec.files.find((f) => f.path === '/app/assets/in.txt');
    expect(String(file?.content)).toBe('input');
  });

  it('another collection’s upload key is refused in file_paths like one that does not exist', async () => {
    const theirs = await post('/api/v1/sandbox/upload', form({}, [{ name: 'x.txt', data: 'x' }]), other.auth);
    const key: string = theirs.body.file_paths[0];
    const ours = key.replace(other.collection, c());
    const a = await post(
      `/api/v1/run/${c()}/report`,
      form({ init_params: JSON.stringify({ file_paths: [key] }) }),
    );
    const b = await post(
      `/api/v1/run/${c()}/report`,
      form({ init_params: JSON.stringify({ file_paths: [ours] }) }),
    );
    expect(a.status).toBe(400);
    expect(a.body.error.code).toBe('file_not_found');
    expect(a.body.error.message.replace(key, 'K')).toBe(b.body.error.message.replace(ours, 'K'));
  });

  it('an oversized upload is a 413 and leaves nothing behind', async () => {
    // Uploads and the store's temporary files: runs of earlier tests may be storing trajectories.
    const uploadsDir = path.join(h.dataDir, 'blobs', 'uploads');
    const before = await filesUnder(uploadsDir).catch(() => []);
    const res = await post(
      '/api/v1/sandbox/upload',
      form({}, [{ name: 'big.bin', data: 'x'.repeat(65 * 1024) }]),
    );
    expect(res.status).toBe(413);
    const many = await post(
      '/api/v1/sandbox/upload',
      form(
        {},
        [1, 2, 3, 4].map((i) => ({ name: `f${i}.txt`, data: 'x' })),
      ),
    );
    expect(many.status).toBe(413);
    expect(await filesUnder(uploadsDir)).toEqual(before);
    expect(await filesUnder(path.join(h.dataDir, 'scratch', 'uploads'))).toEqual([]);
  });

  it('file paths that climb out, or are malformed, are 404s', async () => {
    for (const p of [
      `${c()}/_uploads/..%2F..%2F/x`,
      `${c()}/report/..%2F..%2Fmaster.key/x`,
      `${c()}/report/x/..%2F..%2F..%2F..%2Fmaster.key`,
      `${c()}/report/%2e%2e/x`,
      `${c()}/report/x/a%5Cb`,
      `${c()}`,
    ]) {
      const res = await h.fetch(`${h.url}/api/v1/file/${p}`);
      expect(res.status, p).toBe(404);
    }
    // The same, sent byte for byte (as curl --path-as-is would: fetch would collapse the dots),
    // and through /v1/runs/{id}/artifacts/{path}.
    // The master key sits four levels above a run's artifacts: DATA_DIR/blobs/runs/<id>/artifacts.
    const master = (await readFile(path.join(h.dataDir, 'master.key'), 'utf8')).trim();
    const [run] = ((await sdk.listTrajectories(c(), 'report', 1, 1)) as any).trajectories;
    for (const p of [
      `/api/v1/file/${c()}/report/${run.trajectory_id}/../../../../master.key`,
      `/api/v1/file/${c()}/report/${run.trajectory_id}/..%2F..%2F..%2F..%2Fmaster.key`,
      `/api/v1/file/${c()}/report/${run.trajectory_id}/%252E%252E%252F%252E%252E%252F%252E%252E%252F%252E%252E%252Fmaster.key`,
      `/api/v1/file/${c()}/_uploads/x/%252E%252E%252F%252E%252E%252F%252E%252E%252Fmaster.key`,
      `/v1/runs/${run.trajectory_id}/artifacts/../../../../master.key`,
      `/v1/runs/${run.trajectory_id}/artifacts/..%2F..%2F..%2F..%2Fmaster.key`,
      `/v1/runs/${run.trajectory_id}/artifacts/%2e%2e/%2e%2e/%2e%2e/%2e%2e/master.key`,
    ]) {
      const res = await rawGet(p);
      expect(res.status, p).toBe(404);
      expect(res.body).not.toContain(master);
    }
    // The file they aim at is there, and its neighbour downloads fine.
    expect((await rawGet(`/v1/runs/${run.trajectory_id}/artifacts/hello.txt`)).status).toBe(200);
    // Percent-encoding that does not decode is refused before any route: a 400.
    expect((await h.fetch(`${h.url}/api/v1/file/${c()}/report/x/%ZZ`)).status).toBe(400);
  });
});

describe('downloads serve only recorded artifacts', () => {
  it("a file in the run's artifact directory that the run did not record is a 404 on both routes", async () => {
    const [run] = ((await sdk.listTrajectories(c(), 'report', 1, 1)) as any).trajectories;
    const id = run.trajectory_id as string;
    // In the store beside a recorded artifact (left by an earlier attempt, or put there by anything else).
    const runDir = path.join(h.dataDir, 'blobs', 'runs', id);
    const committed = (await readdir(runDir)).find((d) => d.startsWith('files-'))!;
    await writeFile(path.join(runDir, committed, 'unlisted.txt'), 'not recorded');
    for (const p of [
      `/v1/runs/${id}/artifacts/unlisted.txt`,
      `/api/v1/file/${c()}/report/${id}/unlisted.txt`,
    ]) {
      const res = await rawGet(p);
      expect(res.status, p).toBe(404);
      expect(res.body, p).not.toContain('not recorded');
    }
    for (const p of [`/v1/runs/${id}/artifacts/hello.txt`, `/api/v1/file/${c()}/report/${id}/hello.txt`]) {
      expect((await rawGet(p)).status, p).toBe(200);
    }
  });
});

describe('environment', () => {
  it('set with merge semantics, read back with values hidden', async () => {
    await sdk.setEnvironmentVars(c(), { FOO: 'bar', BAZ: 'q' });
    await sdk.setEnvironmentVars(c(), { BAZ: null } as unknown as Record<string, string>);
    const env = (await sdk.getCollectionEnvironment(c())) as any;
    expect(Object.keys(env.environment_variables)).toContain('FOO');
    expect(env.environment_variables.BAZ).toBeUndefined();
    expect(JSON.stringify(env)).not.toContain('bar');
  });

  it('check-secrets answers {configured, missing, ready}, as the MCP tool computes it', async () => {
    await sdk.setEnvironmentVars(c(), { CHECK_ME: 'v' });
    const ask = async (required_keys: unknown) => {
      const res = await fetch(`${h.url}/api/v1/collections/${c()}/check-secrets`, {
        method: 'POST',
        headers: { ...h.auth, 'content-type': 'application/json' },
        body: JSON.stringify({ required_keys }),
      });
      return { status: res.status, body: (await res.json()) as any };
    };
    const yes = await ask(['CHECK_ME']);
    expect(yes.body.ready).toBe(true);
    expect(yes.body.configured).toContain('CHECK_ME');
    const no = await ask(['CHECK_ME', 'NOT_SET', 'NOT_SET']);
    expect(no.body).toMatchObject({ missing: ['NOT_SET', 'NOT_SET'], ready: false });
    expect((await ask('CHECK_ME')).status).toBe(400);
  });

  it('a bad patch is a 400 naming the variable, and changes nothing', async () => {
    const res = await fetch(`${h.url}/api/v1/collections/${c()}/environment`, {
      method: 'PATCH',
      headers: { ...h.auth, 'content-type': 'application/json' },
      body: JSON.stringify({ environment_variables: { OK_ONE: 'v', 'BAD NAME': 'v' } }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).error.param).toBe('environment_variables.BAD NAME');
    const env = (await sdk.getCollectionEnvironment(c())) as any;
    expect(env.environment_variables.OK_ONE).toBeUndefined();
  });
});

describe('collections', () => {
  it('the admin token creates one and answers its first key, which opens it; a collection key cannot', async () => {
    const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const made = await fetch(`${h.url}/api/v1/collections/`, {
      method: 'POST',
      headers: { ...admin, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'new-team', description: 'made over HTTP' }),
    });
    expect(made.status).toBe(201);
    const body = (await made.json()) as any;
    expect(body).toMatchObject({ name: 'new-team', description: 'made over HTTP' });
    const theirs = new JettyClient({ apiUrl: h.url, token: body.api_key.key, maxRetries: 0 });
    expect(await theirs.getCollection('new-team')).toMatchObject({ name: 'new-team' });
    const refused = await fetch(`${h.url}/api/v1/collections/`, {
      method: 'POST',
      headers: { ...h.auth, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'sneaky' }),
    });
    expect(refused.status).toBe(403);
    // The admin token lists them all, and opens nothing else.
    const all = (await (await fetch(`${h.url}/api/v1/collections/`, { headers: admin })).json()) as any[];
    expect(all.map((x) => x.name)).toEqual(expect.arrayContaining([c(), 'new-team', 'other-team']));
    expect((await fetch(`${h.url}/api/v1/tasks/${c()}/`, { headers: admin })).status).toBe(401);
  });
});

describe('tenancy on /api/v1', () => {
  it('no key or a wrong key: 401 everywhere but /api/v1/health', async () => {
    expect((await fetch(`${h.url}/api/v1/health`)).status).toBe(200);
    const bad = new JettyClient({ apiUrl: h.url, token: `jrk_${'A'.repeat(43)}`, maxRetries: 0 });
    await expect(bad.listCollections()).rejects.toBeInstanceOf(JettyAuthError);
    await expect(bad.getTask(c(), 'report')).rejects.toBeInstanceOf(JettyAuthError);
    await expect(bad.runWorkflow(c(), 'report', {})).rejects.toBeInstanceOf(JettyAuthError);
    for (const [method, p] of [
      ['GET', '/api/v1/collections/'],
      ['GET', `/api/v1/collections/${c()}/environment`],
      ['GET', `/api/v1/tasks/${c()}/`],
      ['POST', `/api/v1/run/${c()}/report`],
      ['GET', `/api/v1/db/trajectories/${c()}/report?limit=1&page=1`],
      ['POST', '/api/v1/sandbox/upload'],
    ] as const) {
      expect((await fetch(`${h.url}${p}`, { method })).status, p).toBe(401);
    }
  });

  it('another collection’s key: our collection, tasks, trajectories and files are 404s', async () => {
    const theirs = new JettyClient({ apiUrl: h.url, token: other.key, maxRetries: 0 });
    const [first] = ((await sdk.listTrajectories(c(), 'report')) as any).trajectories;
    const id = first.trajectory_id;
    for (const call of [
      () => theirs.getCollection(c()),
      () => theirs.getCollectionEnvironment(c()),
      () => theirs.setEnvironmentVars(c(), { X: 'y' }),
      () => theirs.listTasks(c()),
      () => theirs.getTask(c(), 'report'),
      () => theirs.runWorkflow(c(), 'report', {}),
      () => theirs.getTrajectory(c(), 'report', id),
      () => theirs.listTrajectories(c(), 'report'),
      () => theirs.addLabel(c(), 'report', id, 'k', 'v', 'them'),
      () => theirs.getTrajectory(other.collection, 'report', id),
    ]) {
      await expect(call()).rejects.toBeInstanceOf(JettyNotFoundError);
    }
    expect(await theirs.listCollections()).toEqual([expect.objectContaining({ name: other.collection })]);
  });
});
