import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, runbookRequest, startHarness, waitFor } from '../support/harness.js';
import { claudeLines, ScriptedDriver } from '../support/scripted-driver.js';

// Which environment and resources a run gets, from the frontmatter and the jetty block, as the
// sandbox driver is asked for them (the driver is scripted: no Docker here; the e2e file
// test/e2e/environments.e2e.test.ts runs the real images).
let h: Harness;
const driver = new ScriptedDriver(() => claudeLines({ steps: 1, delayMs: 0 }));
beforeAll(async () => {
  h = await startHarness({
    driver,
    env: {
      SANDBOX_CPUS: '1',
      SANDBOX_MAX_CPUS: '4',
      SANDBOX_MEMORY: '2g',
      SANDBOX_MAX_MEMORY: '8g',
      SANDBOX_MAX_DISK: '4g',
    },
  });
});
afterAll(async () => {
  await h?.stop();
});

async function started(body: unknown) {
  const before = driver.started.length;
  const res = await h.postJson(`${h.url}/v1/chat/completions`, body);
  expect(res.status, await res.clone().text()).toBe(200);
  return waitFor(async () => driver.started[before], 20_000, 'the sandbox to start');
}

const GiB = 1024 ** 3;

describe('the environment a run gets', () => {
  it('no snapshot: the lean default, with the runtime’s agent layer', async () => {
    const spec = await started(runbookRequest('# Task\n', { stream: false }));
    expect(spec.image).toBe('jetty/env-lean:1');
    expect(spec.agentImage).toBe('jetty/agent-claude-code:2.1.197');
  });

  it('the frontmatter’s snapshot, and jetty.snapshot over it', async () => {
    const fm = '---\nsnapshot: python312-uv\n---\n# Task\n';
    expect((await started(runbookRequest(fm, { stream: false }))).image).toBe('jetty/env-python312-uv:1');
    const over = await started(
      runbookRequest(fm, { stream: false, jetty: { snapshot: 'prism-playwright' } }),
    );
    expect(over.image).toBe('jetty/env-prism-playwright:1');
  });

  it('a custom image from the frontmatter or jetty.image, recorded on the run', async () => {
    const spec = await started(
      runbookRequest('---\nimage: acme/runner:1.2\n---\n# Task\n', { stream: false }),
    );
    expect(spec.image).toBe('acme/runner:1.2');
    const res = await h.postJson(
      `${h.url}/v1/chat/completions`,
      runbookRequest('# Task\n', { stream: false, jetty: { image: 'acme/other:2' } }),
    );
    const json = (await res.json()) as { jetty_metadata: { trajectory_id: string } };
    const traj = (await (
      await h.fetch(`${h.url}/v1/runs/${json.jetty_metadata.trajectory_id}/trajectory`)
    ).json()) as {
      run: { image: string };
    };
    expect(traj.run.image).toBe('acme/other:2');
  });
});

describe('the resources a run gets', () => {
  it('the server’s defaults when it asks for none', async () => {
    const spec = await started(runbookRequest('# Task\n', { stream: false }));
    expect(spec.limits).toMatchObject({ cpus: 1, memoryBytes: 2 * GiB, diskBytes: GiB });
  });

  it('what the frontmatter asks for within the maxima, and jetty over it', async () => {
    const fm = '---\ncpus: 2\nmemory: 4g\ndisk: 2g\n---\n# Task\n';
    const spec = await started(runbookRequest(fm, { stream: false }));
    expect(spec.limits).toMatchObject({ cpus: 2, memoryBytes: 4 * GiB, diskBytes: 2 * GiB });
    const over = await started(runbookRequest(fm, { stream: false, jetty: { cpus: 4, memory: '8g' } }));
    expect(over.limits).toMatchObject({ cpus: 4, memoryBytes: 8 * GiB, diskBytes: 2 * GiB });
  });
});

describe('with custom images switched off', () => {
  it('a run naming an image is a 400 saying so; snapshots still run', async () => {
    const own = await startHarness({ driver, env: { SANDBOX_ALLOW_CUSTOM_IMAGES: 'false' } });
    try {
      const res = await own.postJson(
        `${own.url}/v1/chat/completions`,
        runbookRequest('# Task\n', { stream: false, jetty: { image: 'acme/runner:1.2' } }),
      );
      expect(res.status).toBe(400);
      const body = (await res.json()) as { error: { param: string; code: string; message: string } };
      expect(body.error).toMatchObject({ param: 'jetty.image', code: 'custom_image_disabled' });
      expect(body.error.message).toMatch(/SANDBOX_ALLOW_CUSTOM_IMAGES/);
    } finally {
      await own.stop();
    }
  });
});
