import { describe, expect, it } from 'vitest';
import { keySegments } from '../../src/jetty/assets.js';
import { fileKey, jettyTrajectory, parseFileKey, workflowId } from '../../src/jetty/trajectory.js';
import { RunStore } from '../../src/queue/run-store.js';

function endedRun(over: Partial<ReturnType<typeof RunStore.newRecord>> = {}) {
  return {
    ...RunStore.newRecord({
      id: '0123456789abcdef',
      agent: 'claude-code',
      model: 'claude-sonnet-4-6',
      provider: 'simulated',
      collection: 'acme',
      task: 'weekly-report',
      timeout_sec: 600,
    }),
    status: 'completed' as const,
    created_at: '2026-01-01T00:00:00.000Z',
    started_at: '2026-01-01T00:00:01.000Z',
    ended_at: '2026-01-01T00:00:31.000Z',
    duration_ms: 30_000,
    final_text: 'done',
    usage: {
      input_tokens: 100,
      output_tokens: 20,
      cache_read_tokens: 50,
      cache_write_tokens: 5,
      cost_usd: 0.01,
      cost_estimated: true,
    },
    artifacts: [
      { path: 'notes/raw data.csv', size: 10, sha256: 'a'.repeat(64), content_type: 'text/csv' },
      { path: 'summary.md', size: 20, sha256: 'b'.repeat(64), content_type: 'text/markdown' },
    ],
    ...over,
  };
}

const input = (over: {
  requiredOutputs?: string[];
  primaryOutputs?: string[];
  initParams?: Record<string, unknown>;
}) => ({
  runbook: '# r',
  instruction: '',
  resultsDir: '/app/results',
  requiredOutputs: over.requiredOutputs ?? [],
  primaryOutputs: over.primaryOutputs ?? [],
  ...(over.initParams ? { initParams: over.initParams } : {}),
});

describe("a run as Jetty's trajectory", () => {
  it('has the SDK type’s fields, one step `run`, files by storage key, and Jetty’s usage names', () => {
    const labels = [{ key: 'review', value: 'ok', author: 'me', created: '2026-01-01T00:01:00.000Z' }];
    const t = jettyTrajectory(
      endedRun(),
      input({
        requiredOutputs: ['/app/results/summary.md', '/app/results/notes/raw data.csv'],
        initParams: { vars: { who: 'x' } },
      }),
      labels,
    );
    for (const field of [
      'name',
      'trajectory_id',
      'storage_path',
      'status',
      'attributes',
      'created',
      'updated',
      'author',
      'metadata_uri',
      'steps',
      'labels',
      'total_steps',
      'completed_steps',
      'init_params',
      'step_configs',
      'org_id',
      'error',
      'triggered_by_routine_id',
      'webhook_url',
    ]) {
      expect(t, field).toHaveProperty(field);
    }
    expect(t).toMatchObject({
      name: 'acme/weekly-report',
      trajectory_id: '0123456789abcdef',
      status: 'completed',
      storage_path: 'acme/weekly-report/0123456789abcdef',
      completed_steps: ['run'],
      total_steps: ['run'],
      init_params: { vars: { who: 'x' } },
      labels,
      error: null,
    });
    const step = t.steps.run;
    expect(step).toMatchObject({
      activity: 'runbook',
      key: 'run',
      created: '2026-01-01T00:00:01.000Z',
      ended: '2026-01-01T00:00:31.000Z',
      duration_seconds: 30,
    });
    expect(step.outputs.files[0]).toEqual({
      path: 'acme/weekly-report/0123456789abcdef/notes/raw%20data.csv',
      name: 'raw data.csv',
      extension: 'csv',
      content_type: 'text/csv',
      size: 10,
      sha256: 'a'.repeat(64),
      url: '/v1/runs/0123456789abcdef/artifacts/notes/raw%20data.csv',
    });
    expect(step.outputs.results_files).toEqual(step.outputs.files);
    // Primary files follow the runbook's order of required outputs (no primary_outputs here).
    expect(step.outputs.primary_files.map((f) => f.name)).toEqual(['summary.md', 'raw data.csv']);
    expect(step.outputs.usage).toMatchObject({
      prompt_tokens: 155,
      completion_tokens: 20,
      total_tokens: 175,
      cost_usd: 0.01,
    });
  });

  it('primary_files follow primary_outputs when the runbook has them; all files when it names none', () => {
    const t = jettyTrajectory(
      endedRun(),
      input({
        primaryOutputs: ['/app/results/summary.md'],
        requiredOutputs: ['/app/results/notes/raw data.csv'],
      }),
      [],
    );
    expect(t.steps.run.outputs.primary_files.map((f) => f.name)).toEqual(['summary.md']);
    expect(jettyTrajectory(endedRun(), input({}), []).steps.run.outputs.primary_files).toHaveLength(2);
    expect(jettyTrajectory(endedRun(), null, []).steps.run.outputs.primary_files).toHaveLength(2);
  });

  it('a failed run has the error message at the top (what runAndWait reports) and no completed steps', () => {
    const error = { code: 'timeout', message: 'The run exceeded its timeout of 600 s.' };
    const t = jettyTrajectory(endedRun({ status: 'failed', error }), null, []);
    expect(t.status).toBe('failed');
    expect(t.error).toBe(error.message);
    expect(t.completed_steps).toEqual([]);
    expect(t.steps.run.outputs.success).toBe(false);
    expect(t.steps.run.error).toEqual(error);
  });

  it('a run without a task is <collection>/run; a running one has no error yet', () => {
    const t = jettyTrajectory(endedRun({ task: null, status: 'running', ended_at: null }), null, []);
    expect(t.name).toBe('acme/run');
    expect(t.error).toBeNull();
    expect(t.steps.run.ended).toBe('');
  });

  it('workflow_id is <collection>-<task>--<id>, and the id is what follows the last --', () => {
    const id = workflowId(endedRun());
    expect(id).toBe('acme-weekly-report--0123456789abcdef');
    expect(id.slice(id.lastIndexOf('--') + 2)).toBe('0123456789abcdef');
  });

  it('a storage key splits back into its parts, whatever the file is called', () => {
    const key = fileKey(endedRun(), 'dir/we ird%#?.md');
    expect(parseFileKey(keySegments(key)!)).toEqual({
      collection: 'acme',
      task: 'weekly-report',
      id: '0123456789abcdef',
      relPath: 'dir/we ird%#?.md',
      kind: 'artifact',
    });
    for (const bad of ['acme/t/id', 'acme/t/id/../x', 'acme/t/id//x', 'acme/t/id/./x', 'acme/t/id/a\\b']) {
      expect(parseFileKey(bad.split('/')), bad).toBeNull();
    }
    // A segment that decodes to a path ("..%2Fx" sent as %252E%252E%252Fx) is not one of ours.
    expect(parseFileKey(keySegments('acme/t/id/..%2F..%2Fmaster.key')!)).toBeNull();
    expect(parseFileKey(keySegments('acme/t/id/a%2Fb')!)).toBeNull();
    expect(parseFileKey(keySegments('acme/weekly%2Freport/id/x')!)).toMatchObject({ task: 'weekly/report' });
  });
});
