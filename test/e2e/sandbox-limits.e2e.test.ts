import { readdir } from 'node:fs/promises';
import path from 'node:path';
import Dockerode from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, runbookRequest, startHarness, waitFor } from '../support/harness.js';
import { containersOfRun, sandboxesLeft } from '../support/sandboxes.js';

// The sandbox's disk limit and the artifact limits, end to end: the real server, Redis, the
// Docker engine, the claude CLI in its image, and the simulated provider running real commands.
const docker = new Dockerode();
const MiB = 1024 ** 2;
let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    // /app gets half of the 256 MiB; results are kept up to 16 MiB a file.
    env: { SANDBOX_DISK: '256m', ARTIFACT_MAX_FILE_BYTES: '16m', ARTIFACT_MAX_BYTES: '64m' },
  });
}, 120_000);

afterEach(async () => {
  const left = await sandboxesLeft(docker, h.instance);
  for (const c of left) await docker.getContainer(c.Id).remove({ force: true });
  expect(left.map((c) => c.Names)).toEqual([]);
});

afterAll(async () => {
  await h?.stop();
});

const FILL = [
  '---',
  'agent: claude-code',
  '---',
  '# Fill the disk',
  '',
  '```simulate',
  '- run: mkdir -p {{results_dir}} && echo one > {{results_dir}}/a.txt && echo two > {{results_dir}}/b.txt && dd if=/dev/zero of={{results_dir}}/big.bin bs=1M count=3072 2>&1 | head -1',
  // The CLI keeps its commands' output under /tmp: a full /tmp would lose this command's output
  // (claude says so), so /tmp is freed before the command prints.
  '- run: r=$(dd if=/dev/zero of=/tmp/fill bs=1M count=1024 2>&1 | head -1); rm -f /tmp/fill; echo "$r"; dd if=/dev/zero of=/home/agent/fill bs=1M count=1024 2>&1 | head -1; echo filled',
  '- sleep_ms: 4000',
  '- say: done',
  '```',
  '',
].join('\n');

interface Event {
  type: string;
  data: Record<string, any>;
}

describe('a sandbox that writes more than its limit', () => {
  it('gets ENOSPC, grows no host disk, and its run keeps the small results and reports the big one', async () => {
    const res = await h.postJson(
      `${h.url}/v1/chat/completions`,
      runbookRequest(FILL, { stream: false, jetty: { timeout_hint: 0 } }),
    );
    const id = ((await res.json()) as { jetty_metadata: { trajectory_id: string } }).jetty_metadata
      .trajectory_id;

    // While the agent pauses with the mounts full, the container's writable layer is empty.
    const events = async () =>
      ((await (await h.fetch(`${h.url}/v1/runs/${id}/trajectory`)).json()) as { events: Event[] }).events;
    await waitFor(
      async () =>
        (await events()).some((e) => e.type === 'tool.result' && String(e.data.output).includes('filled')),
      120_000,
      'the second dd to end',
    );
    const [box] = await containersOfRun(docker, id);
    const withSize = docker.getContainer(box!.Id) as unknown as {
      inspect(o: { size: boolean }): Promise<{ SizeRw?: number }>;
    };
    expect((await withSize.inspect({ size: true })).SizeRw ?? 0).toBeLessThan(MiB);

    const rec = await waitFor(
      async () => {
        const r = (await (await h.fetch(`${h.url}/v1/runs/${id}`)).json()) as Record<string, any>;
        return r.status !== 'running' && r.status !== 'pending' ? r : undefined;
      },
      60_000,
      'the run to end',
    );
    expect(rec.status).toBe('completed');
    const all = await events();
    const outputs = all.filter((e) => e.type === 'tool.result').map((e) => String(e.data.output));
    expect(outputs.join('\n').match(/No space left on device/g)).toHaveLength(3);

    expect(rec.artifacts.map((a: { path: string }) => a.path)).toEqual(['a.txt', 'b.txt']);
    expect(rec.artifacts_dropped.count).toBe(1);
    expect(rec.artifacts_dropped.files).toEqual([
      { path: 'big.bin', size: expect.any(Number), reason: 'file_too_large' },
    ]);
    // dd filled /app (128 MiB) less what the small files and the CLI's own files took.
    expect(rec.artifacts_dropped.files[0].size).toBeGreaterThan(100 * MiB);
    expect(rec.artifacts_dropped.files[0].size).toBeLessThanOrEqual(128 * MiB);
    const warning = all.find((e) => e.type === 'run.warning' && e.data.code === 'artifacts_dropped');
    expect(warning?.data.message).toMatch(
      /big\.bin \(\d+\.\d MiB, file_too_large: ARTIFACT_MAX_FILE_BYTES\)/,
    );

    // The small files are served; nothing partial is left in DATA_DIR.
    expect(await (await h.fetch(`${h.url}/v1/runs/${id}/artifacts/a.txt`)).text()).toBe('one\n');
    const runDir = path.join(h.dataDir, 'blobs', 'runs', id);
    const committed = (await readdir(runDir)).filter((d) => d.startsWith('files-'));
    expect(committed).toHaveLength(1);
    expect((await readdir(path.join(runDir, committed[0]!))).sort()).toEqual(['a.txt', 'b.txt']);
    // Once the worker is done with the run (its conversation files are saved after its end).
    const scratch = () => readdir(path.join(h.dataDir, 'scratch', 'collect')).catch(() => [] as string[]);
    await waitFor(
      async () => (await scratch()).length === 0,
      5_000,
      'the scratch directory to be emptied',
    ).catch(() => undefined);
    expect(await scratch()).toEqual([]);
  }, 180_000);
});
