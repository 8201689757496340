import { describe, expect, it } from 'vitest';
import { RunStore } from '../../src/queue/run-store.js';
import { buildWebhookPayload } from '../../src/webhooks/payload.js';

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

describe('the webhook payload', () => {
  it("is shaped after Jetty's trajectory callback, with one step, run", () => {
    const p = buildWebhookPayload(endedRun(), {
      resultsDir: '/app/results',
      requiredOutputs: ['/app/results/summary.md', '/app/results/notes/raw data.csv'],
    });
    expect(Object.keys(p).sort()).toEqual(
      [
        'name',
        'trajectory_id',
        'status',
        'storage_path',
        'created',
        'ended',
        'error',
        'steps',
        'completed_steps',
        'total_steps',
        'init_params',
      ].sort(),
    );
    expect(p).toMatchObject({
      name: 'acme/weekly-report',
      trajectory_id: '0123456789abcdef',
      status: 'completed',
      storage_path: '/v1/runs/0123456789abcdef/artifacts',
      completed_steps: ['run'],
      total_steps: ['run'],
      init_params: {
        agent: 'claude-code',
        model: 'claude-sonnet-4-6',
        model_provider: 'simulated',
        timeout_sec: 600,
      },
    });
    const step = p.steps.run;
    expect(step).toMatchObject({
      activity: 'runbook',
      status: 'completed',
      created: '2026-01-01T00:00:01.000Z',
      ended: '2026-01-01T00:00:31.000Z',
      duration_seconds: 30,
      error: null,
    });
    expect(step.outputs.success).toBe(true);
    expect(step.outputs.final_text).toBe('done');
    expect(step.outputs.files[0]).toEqual({
      path: 'notes/raw data.csv',
      name: 'raw data.csv',
      extension: '.csv',
      content_type: 'text/csv',
      size: 10,
      sha256: 'a'.repeat(64),
      download_path: '/v1/runs/0123456789abcdef/artifacts/notes/raw%20data.csv',
    });
    expect(step.outputs.results_files).toEqual(step.outputs.files);
    // Primary files follow the runbook's order of required outputs.
    expect(step.outputs.primary_files.map((f) => f.path)).toEqual(['summary.md', 'notes/raw data.csv']);
    expect(step.outputs.usage).toEqual({
      prompt_tokens: 155,
      completion_tokens: 20,
      total_tokens: 175,
      input_tokens: 100,
      output_tokens: 20,
      cache_read_tokens: 50,
      cache_write_tokens: 5,
      cost_usd: 0.01,
      cost_estimated: true,
      duration_seconds: 30,
    });
  });

  it('names a run without a task <collection>/run', () => {
    expect(buildWebhookPayload(endedRun({ task: null }), null).name).toBe('acme/run');
  });

  it('lists every file as primary when the runbook names no required outputs', () => {
    const p = buildWebhookPayload(endedRun(), { resultsDir: '/app/results', requiredOutputs: [] });
    expect(p.steps.run.outputs.primary_files).toHaveLength(2);
    expect(buildWebhookPayload(endedRun(), null).steps.run.outputs.primary_files).toHaveLength(2);
  });

  it('carries a failed run with its error and no completed steps', () => {
    const error = { code: 'timeout', message: 'The run exceeded its timeout of 600 s.' };
    const p = buildWebhookPayload(endedRun({ status: 'failed', error }), null);
    expect(p.status).toBe('failed');
    expect(p.error).toEqual(error);
    expect(p.completed_steps).toEqual([]);
    expect(p.steps.run.outputs.success).toBe(false);
    expect(p.steps.run.error).toEqual(error);
  });

  it('carries a run cancelled before it started (no start time, no files)', () => {
    const p = buildWebhookPayload(
      endedRun({ status: 'cancelled', started_at: null, duration_ms: 0, artifacts: [] }),
      null,
    );
    expect(p.status).toBe('cancelled');
    expect(p.steps.run.created).toBe('2026-01-01T00:00:00.000Z');
    expect(p.steps.run.outputs.files).toEqual([]);
  });
});
