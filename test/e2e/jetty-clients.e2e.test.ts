import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  JettyApiError,
  JettyAuthError,
  JettyClient,
  JettyNotFoundError,
  JettyRunFailedError,
  type Trajectory,
} from '@jetty/sdk';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import Dockerode from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, startHarness, waitFor } from '../support/harness.js';
import { runSandboxesOf } from '../support/sandboxes.js';

// End to end through Jetty's own published clients: @jetty/sdk 0.4.0 and jetty-mcp-server 1.1.0
// (over stdio, driven by the MCP SDK client) against /api/v1 of the real server, with a real
// Redis, the real Docker engine, the real claude CLI in its image and the simulated provider.
// See docs/jetty-api-v1-contract.md for what each client sends and reads.
const docker = new Dockerode();
let h: Harness;
let sdk: JettyClient;

/** `{{name}}` comes from the run's init_params.vars. */
const HELLO_RUNBOOK = [
  '---',
  'primary_outputs: [report.md]',
  '---',
  '# Hello',
  '',
  'Write a one-line greeting to report.md.',
  '',
  '```simulate',
  "- run: mkdir -p /app/results && printf 'hi {{name}}' > /app/results/report.md",
  '- say: wrote report.md',
  '```',
  '',
].join('\n');

const FAILING_RUNBOOK = '# Fails\n\n```simulate\n- fail: 401\n```\n';

function runbookWorkflow(instruction: string) {
  return {
    steps: ['run'],
    step_configs: { run: { activity: 'runbook' } },
    init_params: { agent: 'claude-code', model_provider: 'simulated', instruction },
  };
}

const RUN_OPTS = { pollMs: 250, timeoutMs: 120_000 };
const BAD_TOKEN = `jrk_${'A'.repeat(43)}`;

interface FileRef {
  path: string;
  content_type?: string;
  extension?: string;
}

/** The trajectory the SDK's runAndWait resolved with; later tests read, label and download it. */
let done: Trajectory | undefined;

function completed(): Trajectory {
  if (!done) throw new Error('the runAndWait test did not produce a completed trajectory');
  return done;
}

function outputsOf(t: Trajectory): Record<string, any> {
  return (t.steps?.['run']?.outputs ?? {}) as Record<string, any>;
}

function reportKey(t: Trajectory): string {
  const files = (outputsOf(t).files ?? []) as FileRef[];
  const report = files.find((f) => f.path.endsWith('report.md'));
  if (!report) throw new Error(`no report.md among ${JSON.stringify(files)}`);
  return report.path;
}

const utf8 = (bytes: Uint8Array) => Buffer.from(bytes).toString('utf8');

beforeAll(async () => {
  h = await startHarness();
  sdk = new JettyClient({ apiUrl: h.url, token: h.key });
}, 120_000);

afterEach(async () => {
  // No run may leave a sandbox behind (allow the worker a moment to remove the last one).
  const owned = () => runSandboxesOf(docker, h.instance);
  await waitFor(async () => (await owned()).length === 0, 10_000, 'sandboxes to be removed').catch(
    () => undefined,
  );
  const left = await owned();
  for (const c of left) await docker.getContainer(c.Id).remove({ force: true });
  expect(left.map((c) => c.Names)).toEqual([]);
}, 30_000);

afterAll(async () => {
  await h?.stop();
});

describe('@jetty/sdk against /api/v1', () => {
  it('createTask stores a runbook task that getTask returns', async () => {
    const task = await sdk.createTask(h.collection, 'hello', runbookWorkflow(HELLO_RUNBOOK), 'desc');
    expect(task.name).toBe('hello');
    const got = await sdk.getTask(h.collection, 'hello');
    expect(got.name).toBe('hello');
    expect(got.description).toBe('desc');
    expect((got.workflow as any).step_configs.run.activity).toBe('runbook');
    expect((got.workflow as any).init_params.instruction).toBe(HELLO_RUNBOOK);
  });

  it('listTasks lists the task', async () => {
    const tasks = await sdk.listTasks(h.collection);
    expect(Array.isArray(tasks)).toBe(true);
    expect(tasks.map((t) => t.name)).toContain('hello');
  });

  it('createTask refuses a workflow whose step is not a runbook (400 naming runbook)', async () => {
    const workflow = {
      steps: ['run'],
      step_configs: { run: { activity: 'litellm_chat' } },
      init_params: { prompt: 'hi' },
    };
    const err = await sdk.createTask(h.collection, 'chat', workflow).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(JettyApiError);
    expect((err as JettyApiError).status).toBe(400);
    expect((err as JettyApiError).body).toMatch(/runbook/);
    // Nothing was stored under that name.
    await expect(sdk.getTask(h.collection, 'chat')).rejects.toBeInstanceOf(JettyNotFoundError);
  });

  it('runAndWait runs the task to completed, with downloadable files, primary_files and usage', async () => {
    const t = await sdk.runAndWait(h.collection, 'hello', { vars: { name: 'sdk' } }, RUN_OPTS);
    expect(t.status).toBe('completed');
    expect(t.error ?? null).toBeNull();
    expect(t.name).toBe(`${h.collection}/hello`);
    expect(typeof t.trajectory_id).toBe('string');
    expect(t.trajectory_id).not.toContain('--');
    expect((t.init_params.vars as Record<string, string>).name).toBe('sdk');
    expect(t.completed_steps).toContain('run');
    const out = outputsOf(t);
    const files = out.files as FileRef[];
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) expect(f.path.startsWith(`${h.collection}/`)).toBe(true);
    expect(files.some((f) => f.path.endsWith('report.md'))).toBe(true);
    const primary = out.primary_files as FileRef[];
    expect(primary.map((f) => path.posix.basename(f.path))).toEqual(['report.md']);
    expect(out.usage).toBeTypeOf('object');
    expect(out.usage.total_tokens).toBeGreaterThan(0);
    done = t;
  }, 150_000);

  it('listTrajectories contains the run and getTrajectory returns it', async () => {
    const t = completed();
    const list = await sdk.listTrajectories(h.collection, 'hello');
    expect(list.trajectories.map((x) => x.trajectory_id)).toContain(t.trajectory_id);
    const got = await sdk.getTrajectory(h.collection, 'hello', t.trajectory_id);
    expect(got.trajectory_id).toBe(t.trajectory_id);
    expect(got.status).toBe('completed');
    expect(outputsOf(got).files).toEqual(outputsOf(t).files);
  });

  it('addLabel, then getTrajectory (and the list) show the label', async () => {
    const t = completed();
    await sdk.addLabel(h.collection, 'hello', t.trajectory_id, 'review', 'ok', 'me@example.com');
    const got = await sdk.getTrajectory(h.collection, 'hello', t.trajectory_id);
    const label = got.labels.find((l) => l.key === 'review');
    expect(label).toMatchObject({ key: 'review', value: 'ok', author: 'me@example.com' });
    expect(Number.isNaN(Date.parse(label!.created))).toBe(false);
    const listed = (await sdk.listTrajectories(h.collection, 'hello')).trajectories.find(
      (x) => x.trajectory_id === t.trajectory_id,
    );
    expect(listed?.labels.map((l) => `${l.key}=${l.value}`)).toContain('review=ok');
  });

  it('downloadFile returns the report: bytes, a content type and the file name', async () => {
    const file = await sdk.downloadFile(reportKey(completed()));
    expect(utf8(file.bytes)).toBe('hi sdk');
    expect(file.contentType).toBeTruthy();
    expect(file.filename).toBe('report.md');
  });

  it('setEnvironmentVars then getCollectionEnvironment: the key is listed, its value redacted; null deletes', async () => {
    const canary = `canary-${Date.now().toString(36)}-value`;
    const patched = await sdk.setEnvironmentVars(h.collection, { FOO: 'bar', CANARY: canary });
    expect(JSON.stringify(patched)).not.toContain(canary);
    const env = (await sdk.getCollectionEnvironment(h.collection)) as {
      environment_variables: Record<string, unknown>;
    };
    expect(Object.keys(env.environment_variables)).toEqual(expect.arrayContaining(['FOO', 'CANARY']));
    expect(env.environment_variables.FOO).not.toBe('bar');
    expect(JSON.stringify(env)).not.toContain(canary);

    await sdk.setEnvironmentVars(h.collection, { FOO: null, CANARY: null } as unknown as Record<
      string,
      string
    >);
    const after = (await sdk.getCollectionEnvironment(h.collection)) as {
      environment_variables: Record<string, unknown>;
    };
    expect(Object.keys(after.environment_variables)).not.toContain('FOO');
    expect(Object.keys(after.environment_variables)).not.toContain('CANARY');
  });

  it('a run that fails (fail: 401): runAndWait rejects with JettyRunFailedError and the error', async () => {
    await sdk.createTask(h.collection, 'fails', runbookWorkflow(FAILING_RUNBOOK));
    const err = await sdk.runAndWait(h.collection, 'fails', {}, RUN_OPTS).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(JettyRunFailedError);
    const failed = err as JettyRunFailedError;
    expect(failed.status).toBe('failed');
    expect(typeof failed.trajectoryError).toBe('string');
    expect(failed.trajectoryError!.length).toBeGreaterThan(0);
    expect(failed.trajectoryError).toMatch(/401/);
    const t = await sdk.getTrajectory(h.collection, 'fails', failed.trajectoryId!);
    expect(t.status).toBe('failed');
    expect(t.error).toBe(failed.trajectoryError);
  }, 150_000);
});

describe('jetty-mcp-server 1.1.0 over stdio', () => {
  const mcpEntry = path.join(
    path.dirname(createRequire(import.meta.url).resolve('jetty-mcp-server/package.json')),
    'dist',
    'index.js',
  );
  const opened: Array<{ client: Client; home: string }> = [];
  let mcp: Client;
  let stderr = '';

  async function connect(token: string): Promise<Client> {
    const home = await mkdtemp(path.join(tmpdir(), 'jetty-mcp-home-'));
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [mcpEntry],
      env: { PATH: process.env.PATH ?? '', JETTY_API_TOKEN: token, JETTY_API_URL: h.url, HOME: home },
      stderr: 'pipe',
    });
    transport.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString('utf8');
    });
    const client = new Client({ name: 'jetty-clients-e2e', version: '0.0.0' });
    await client.connect(transport);
    opened.push({ client, home });
    return client;
  }

  async function call(client: Client, name: string, args: Record<string, unknown>) {
    const res = await client.callTool({ name, arguments: args });
    const text = (res.content as Array<{ type: string; text?: string }>)
      .filter((c) => c.type === 'text')
      .map((c) => c.text ?? '')
      .join('');
    return { isError: res.isError === true, text };
  }

  /** A successful tool call's JSON. */
  async function callJson(client: Client, name: string, args: Record<string, unknown>) {
    const res = await call(client, name, args);
    if (res.isError) throw new Error(`${name} failed: ${res.text}\nMCP server stderr: ${stderr}`);
    return JSON.parse(res.text) as Record<string, any>;
  }

  beforeAll(async () => {
    mcp = await connect(h.key);
  });

  afterAll(async () => {
    for (const o of opened) {
      await o.client.close();
      await rm(o.home, { recursive: true, force: true });
    }
  });

  it('check-secrets lists the collection keys and the missing one', async () => {
    await sdk.setEnvironmentVars(h.collection, { FOO2: 'value-two' });
    const res = await callJson(mcp, 'check-secrets', {
      collection: h.collection,
      required_keys: ['FOO2', 'NOPE'],
    });
    expect(res.configured).toContain('FOO2');
    expect(res.missing).toEqual(['NOPE']);
    expect(res.ready).toBe(false);
  });

  it('run-workflow starts a run that get-trajectory follows to completed; the report says "hi mcp"', async () => {
    const started = await callJson(mcp, 'run-workflow', {
      collection: h.collection,
      task: 'hello',
      init_params: { vars: { name: 'mcp' } },
    });
    const workflowId = started.workflow_id as string;
    expect(workflowId).toContain('--');
    const id = workflowId.slice(workflowId.lastIndexOf('--') + 2);
    expect(id.length).toBeGreaterThan(0);

    const t = await waitFor(
      async () => {
        const got = await callJson(mcp, 'get-trajectory', {
          collection: h.collection,
          task: 'hello',
          trajectory_id: id,
        });
        if (['completed', 'failed', 'cancelled', 'archived'].includes(got.status)) return got;
        await new Promise((r) => setTimeout(r, 500));
        return undefined;
      },
      90_000,
      'the MCP-started run to end',
    );
    expect(t.trajectory_id).toBe(id);
    expect(t.status).toBe('completed');
    const file = await sdk.downloadFile(reportKey(t as Trajectory));
    expect(utf8(file.bytes)).toBe('hi mcp');
  }, 150_000);

  it('a bad token: the tool result is an error naming 401', async () => {
    const bad = await connect(BAD_TOKEN);
    const res = await call(bad, 'check-secrets', { collection: h.collection, required_keys: ['FOO2'] });
    expect(res.isError).toBe(true);
    expect(res.text).toContain('401');
  });
});

describe('tenancy through the SDK', () => {
  it("another collection's key gets 404 for our trajectory, task and file", async () => {
    const t = completed();
    const other = await h.addCollection('other-team');
    const them = new JettyClient({ apiUrl: h.url, token: other.key });
    // Sanity: our own key still reads all three.
    await expect(sdk.getTask(h.collection, 'hello')).resolves.toMatchObject({ name: 'hello' });
    await expect(sdk.getTrajectory(h.collection, 'hello', t.trajectory_id)).resolves.toMatchObject({
      trajectory_id: t.trajectory_id,
    });
    await expect(sdk.downloadFile(reportKey(t))).resolves.toMatchObject({ filename: 'report.md' });

    await expect(them.getTrajectory(h.collection, 'hello', t.trajectory_id)).rejects.toBeInstanceOf(
      JettyNotFoundError,
    );
    await expect(them.getTask(h.collection, 'hello')).rejects.toBeInstanceOf(JettyNotFoundError);
    await expect(them.downloadFile(reportKey(t))).rejects.toBeInstanceOf(JettyNotFoundError);
  });

  it('a wrong token gets JettyAuthError (401)', async () => {
    const stranger = new JettyClient({ apiUrl: h.url, token: BAD_TOKEN });
    const err = await stranger.getTask(h.collection, 'hello').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(JettyAuthError);
    expect((err as JettyAuthError).status).toBe(401);
    await expect(
      stranger.getTrajectory(h.collection, 'hello', completed().trajectory_id),
    ).rejects.toBeInstanceOf(JettyAuthError);
  });
});
