import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, runbookRequest, startHarness, waitFor } from '../support/harness.js';
import { sandboxesLeft } from '../support/sandboxes.js';

// Environments end to end: the real agent CLIs layered onto each snapshot's image and onto images
// made here, with the simulated model. What a user notices: the tools a snapshot promises are
// there when the agent's commands run, a plain image runs any runtime, an image that cannot host
// the agent is refused with the reason, and the environment check names what is missing.
const run = promisify(execFile);
const docker = new Dockerode();
let h: Harness;
let work: string;
/** Images this file builds, removed at the end (by name: nothing else uses them). */
const PLAIN_IMAGE = `jetty-test/plain-debian:${process.pid}`;
const SCRATCH_IMAGE = `jetty-test/scratch-file:${process.pid}`;

beforeAll(async () => {
  h = await startHarness();
  work = await mkdtemp(path.join(tmpdir(), 'jetty-env-'));
  await buildTestImages();
}, 300_000);
afterEach(async () => {
  // Warm sandboxes no run has claimed stay with the pool (the harness checks they go at its stop).
  const left = await sandboxesLeft(docker, h.instance);
  for (const c of left) await docker.getContainer(c.Id).remove({ force: true });
  expect(left.filter((c) => c.Labels['jetty.probe'] !== 'true')).toEqual([]);
});
afterAll(async () => {
  await h?.stop();
  for (const image of [PLAIN_IMAGE, SCRATCH_IMAGE])
    await docker
      .getImage(image)
      .remove()
      .catch(() => undefined);
  if (work) await rm(work, { recursive: true, force: true });
});

/** The local Debian base the images were built from (or the registry's, where one is pulled). */
async function plainBase(): Promise<string> {
  for (const candidate of [
    'jetty-local/debian:trixie',
    'jetty-local/node:22-bookworm',
    'debian:bookworm-slim',
  ]) {
    if (
      await docker
        .getImage(candidate)
        .inspect()
        .then(
          () => true,
          () => false,
        )
    )
      return candidate;
  }
  throw new Error('no plain Debian image on this engine: run docker/build-images.sh first');
}

/** A plain Debian image (no agent user, no /app) and an image of one static file and nothing else. */
async function buildTestImages(): Promise<void> {
  const plain = path.join(work, 'plain');
  const scratch = path.join(work, 'scratch');
  await run('mkdir', ['-p', plain, scratch]);
  await writeFile(path.join(plain, 'Dockerfile'), `FROM ${await plainBase()}\nRUN true\n`);
  await writeFile(path.join(scratch, 'hello.txt'), 'hello\n');
  await writeFile(path.join(scratch, 'Dockerfile'), 'FROM scratch\nCOPY hello.txt /hello.txt\n');
  const env = { ...process.env, DOCKER_BUILDKIT: '0' };
  await run('docker', ['build', '-q', '--network', 'none', '-t', PLAIN_IMAGE, plain], { env });
  await run('docker', ['build', '-q', '--network', 'none', '-t', SCRATCH_IMAGE, scratch], { env });
}

interface Ev {
  type: string;
  data: Record<string, any>;
}

async function runToEnd(runbook: string, jetty: Record<string, unknown>) {
  const res = await h.postJson(
    `${h.url}/v1/chat/completions`,
    runbookRequest(runbook, { stream: false, model: 'default', jetty }),
  );
  const json = (await res.json()) as Record<string, any>;
  const runId = json.jetty_metadata?.trajectory_id as string;
  const traj = (await (await h.fetch(`${h.url}/v1/runs/${runId}/trajectory`)).json()) as {
    run: Record<string, any>;
    events: Ev[];
  };
  return { status: res.status, json, runId, run: traj.run, events: traj.events };
}

async function artifact(runId: string, name: string): Promise<string> {
  const res = await h.fetch(`${h.url}/v1/runs/${runId}/artifacts/${name}`);
  expect(res.status, `${name} of run ${runId}`).toBe(200);
  return res.text();
}

/** A runbook that asks each tool for its version and writes the answers to results_dir. */
function toolsRunbook(extra: string[] = []): string {
  return [
    '# Tools',
    '',
    '```simulate',
    '- run: |',
    '    mkdir -p {{results_dir}} && cd {{results_dir}}',
    '    python3 --version > python.txt 2>&1',
    '    uv --version > uv.txt 2>&1',
    '    pip --version > pip.txt 2>&1',
    `    echo '{"a":[1,2]}' | jq -c .a > jq.txt 2>&1`,
    '    git --version > git.txt 2>&1',
    '    curl --version > curl.txt 2>&1',
    // Each extra check is a step of its own: a tool call each, none waiting for the others.
    ...extra.flatMap((cmd) => [
      '- run: |',
      '    cd {{results_dir}}',
      ...cmd.split('\n').map((l) => `    ${l}`),
    ]),
    '- say: done',
    '```',
    '',
  ].join('\n');
}

async function expectTools(runId: string): Promise<void> {
  expect(await artifact(runId, 'python.txt')).toMatch(/^Python 3\.1[1-9]\.\d+/);
  expect(await artifact(runId, 'uv.txt')).toMatch(/^uv 0\.\d+\.\d+/);
  expect(await artifact(runId, 'pip.txt')).toMatch(/^pip \d+/);
  expect((await artifact(runId, 'jq.txt')).trim()).toBe('[1,2]');
  expect(await artifact(runId, 'git.txt')).toMatch(/^git version 2\./);
  expect(await artifact(runId, 'curl.txt')).toMatch(/^curl \d+\./);
}

const OFFICE = [
  `python3 -c 'import openpyxl, docx, pypdf, pdfplumber, reportlab; print("office ok")' > office.txt 2>&1`,
  'pdftotext -v > pdftotext.txt 2>&1',
];

/**
 * A local page loaded by headless Chromium, from Python's Playwright and from Node's. Each answer
 * is moved into place when its command ends. codex's exec_command hands a command still running
 * after 10 s back to the model (it keeps running in the background); the run would then end
 * before a browser that starts slowly on a loaded machine had answered, so short steps follow
 * that wait (up to 9 s each, under codex's 10 s) until both answers are there.
 */
const BROWSER = [
  `printf '<html><head><title>jetty-page</title></head><body>hi</body></html>' > /app/page.html`,
  `python3 -c 'from playwright.sync_api import sync_playwright` +
    `\nwith sync_playwright() as p:` +
    `\n    b = p.chromium.launch()` +
    `\n    pg = b.new_page(); pg.goto("file:///app/page.html"); print("python", pg.title()); b.close()' > bp.tmp 2>&1; mv bp.tmp browser-python.txt`,
  `node -e 'const { chromium } = require("playwright"); (async () => { const b = await chromium.launch(); const p = await b.newPage(); await p.goto("file:///app/page.html"); console.log("node", await p.title()); await b.close(); })()' > bn.tmp 2>&1; mv bn.tmp browser-node.txt`,
  ...Array.from(
    { length: 8 },
    () =>
      'for i in $(seq 18); do [ -e browser-python.txt ] && [ -e browser-node.txt ] && break; sleep 0.5; done',
  ),
];

const SNAPSHOT_CASES: { snapshot: string; extra: string[]; check?: (runId: string) => Promise<void> }[] = [
  { snapshot: 'python312-uv', extra: [] },
  {
    snapshot: 'python312-uv-office',
    extra: OFFICE,
    check: async (runId) => {
      expect((await artifact(runId, 'office.txt')).trim()).toBe('office ok');
      expect(await artifact(runId, 'pdftotext.txt')).toMatch(/pdftotext version/);
    },
  },
  {
    snapshot: 'prism-playwright',
    extra: BROWSER,
    check: async (runId) => {
      expect((await artifact(runId, 'browser-python.txt')).trim()).toBe('python jetty-page');
      expect((await artifact(runId, 'browser-node.txt')).trim()).toBe('node jetty-page');
    },
  },
];

for (const { snapshot, extra, check } of SNAPSHOT_CASES) {
  for (const agent of ['claude-code', 'codex']) {
    describe(`snapshot ${snapshot} on ${agent}`, () => {
      it('has what the snapshot promises, where the agent’s commands run', async () => {
        const r = await runToEnd(toolsRunbook(extra), { agent, snapshot });
        expect(r.status, JSON.stringify(r.json)).toBe(200);
        expect(r.run.status).toBe('completed');
        expect(r.events.find((e) => e.type === 'run.started')?.data.image).toBe(`jetty/env-${snapshot}:1`);
        await expectTools(r.runId);
        await check?.(r.runId);
      }, 180_000);
    });
  }
}

describe('a custom image', () => {
  const HELLO = [
    '# Hello',
    '',
    '```simulate',
    '- run: mkdir -p {{results_dir}} && cat /etc/os-release > {{results_dir}}/os.txt && id -u > {{results_dir}}/uid.txt',
    '- say: done',
    '```',
    '',
  ].join('\n');

  for (const agent of ['claude-code', 'gemini-cli']) {
    it(`a plain Debian image built here runs ${agent}`, async () => {
      const r = await runToEnd(`---\nimage: ${PLAIN_IMAGE}\n---\n${HELLO}`, { agent });
      expect(r.status, JSON.stringify(r.json)).toBe(200);
      expect(r.run.status).toBe('completed');
      expect(r.run.image).toBe(PLAIN_IMAGE);
      expect(await artifact(r.runId, 'os.txt')).toMatch(/Debian/);
      expect((await artifact(r.runId, 'uid.txt')).trim()).toBe('1000');
    }, 180_000);
  }

  it('an image without glibc or a shell is refused with the reason, before any agent starts', async () => {
    const r = await runToEnd(HELLO, { image: SCRATCH_IMAGE });
    expect(r.run.status).toBe('failed');
    expect(r.run.error.code).toBe('image_unusable');
    expect(r.run.error.message).toContain(SCRATCH_IMAGE);
    expect(r.run.error.message).toMatch(/no glibc/);
    expect(r.events.some((e) => e.type === 'run.started')).toBe(false);
  }, 120_000);

  it('an image the engine does not have is a clear error naming it', async () => {
    const r = await runToEnd(HELLO, { image: 'jetty-test/not-built:0' });
    expect(r.run.status).toBe('failed');
    expect(r.run.error.code).toBe('image_not_found');
    expect(r.run.error.message).toContain('jetty-test/not-built:0');
  }, 60_000);
});

describe('the environment check', () => {
  const PYTHON_RUNBOOK = [
    '# Count rows',
    '',
    '## Dependencies',
    '',
    '| Dependency | Purpose |',
    '|---|---|',
    '| Python 3.12 | the script |',
    '| jq | reading the JSON |',
    '',
    '## Step 1',
    '',
    '```python',
    'print(sum(1 for _ in open("/app/assets/data.csv")))',
    '```',
    '',
    '```simulate',
    '- run: mkdir -p {{results_dir}} && echo checked > {{results_dir}}/out.txt',
    '- say: done',
    '```',
    '',
  ].join('\n');

  function envWarnings(events: Ev[]) {
    return events.filter((e) => e.type === 'run.warning' && e.data.code === 'environment_missing');
  }

  it('names python3 (and jq) missing on lean, once, before the agent starts, and in the final metadata', async () => {
    const r = await runToEnd(PYTHON_RUNBOOK, {});
    expect(r.run.status).toBe('completed');
    const warned = envWarnings(r.events);
    expect(warned).toHaveLength(1);
    expect(warned[0]!.data.message).toMatch(/python3, jq|jq, python3/);
    expect(warned[0]!.data.message).toContain('lean');
    const at = (type: string) => r.events.findIndex((e) => e.type === type);
    expect(r.events.indexOf(warned[0]!)).toBeLessThan(at('run.started'));
    const meta = r.json.jetty_metadata as { warnings?: { code: string }[] };
    expect(meta.warnings?.map((w) => w.code)).toContain('environment_missing');
  }, 120_000);

  it('names nothing missing on python312-uv', async () => {
    const r = await runToEnd(PYTHON_RUNBOOK, { snapshot: 'python312-uv' });
    expect(r.run.status).toBe('completed');
    expect(envWarnings(r.events)).toEqual([]);
  }, 120_000);
});

describe('GET /v1/snapshots', () => {
  it('lists the served snapshots with their Python, size and the runtimes that run there', async () => {
    const s = await startHarness({ env: { ENVIRONMENT_SURVEY: 'true', SANDBOX_SNAPSHOTS: 'python312-uv' } });
    try {
      const list = await waitFor(
        async () => {
          const body = (await (await s.fetch(`${s.url}/v1/snapshots`)).json()) as {
            data: Record<string, any>[];
          };
          const py = body.data.find((d) => d.id === 'python312-uv');
          return py?.runtimes.length === 5 ? body.data : undefined;
        },
        240_000,
        'the worker to report both snapshots with every runtime',
      );
      expect(list.map((d) => d.id)).toEqual(['lean', 'python312-uv']);
      const [lean, py] = list as [Record<string, any>, Record<string, any>];
      expect(lean).toMatchObject({ default: true, available: true, python: null, image: 'jetty/env-lean:1' });
      expect(py).toMatchObject({ default: false, available: true, image: 'jetty/env-python312-uv:1' });
      expect(py.python).toMatch(/^3\.1[1-9]\.\d+$/);
      expect(py.size_bytes).toBeGreaterThan(100 * 1024 * 1024);
      expect([...py.runtimes].sort()).toEqual(['claude-code', 'codex', 'gemini-cli', 'hermes', 'opencode']);
    } finally {
      await s.stop();
    }
  }, 300_000);
});
