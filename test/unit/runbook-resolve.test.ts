import { describe, expect, it } from 'vitest';
import {
  inferAgentFromModel,
  isModelPlaceholder,
  type ResolveInput,
  resolveRunbook,
} from '../../src/runbook/resolve.js';
import { thrown } from '../support/errors.js';

/** A runbook in the canonical Jetty section order. */
const WEEKLY_REPORT = `---
version: "1.0.0"
evaluation: programmatic
agent: claude-code
model: anthropic/claude-sonnet-4.6
model_provider: openrouter
snapshot: python312-uv
primary_outputs:
  - report.md
  - "charts/{{topic}}.png"
secrets:
  SALES_API: { env: SALES_API_KEY, description: "Read-only sales API key", required: true }
origin:
  url: https://github.com/acme/skills/tree/main/weekly-report
---
# Weekly Sales Report — Agent Runbook

## Objective

Summarise last week's sales for {{topic}} into a short report with one chart.

## REQUIRED OUTPUT FILES (MANDATORY)

**You MUST write all of the following files. The task is NOT complete until every file exists and is non-empty. No exceptions.**

| File | Description |
|------|-------------|
| \`{{results_dir}}/report.md\` | The report |
| \`{{results_dir}}/charts/{{topic}}.png\` | The chart |
| \`{{results_dir}}/summary.md\` | Executive summary |
| \`{{results_dir}}/validation_report.json\` | Validation results |

## Parameters

| Parameter | Template Variable | Default | Description |
|-----------|-------------------|---------|-------------|
| Results directory | \`{{results_dir}}\` | /app/results | Where outputs go |
| Topic | \`{{topic}}\` | — | Product line |

## Dependencies

- Python 3.12, pandas, matplotlib

## Step 1: Environment Setup

\`\`\`bash
mkdir -p {{results_dir}}/charts
curl -s -H "Authorization: Bearer {{secrets.SALES_API}}" https://sales.example/api/weekly > {{results_dir}}/raw.json
\`\`\`

## Step 2: Analyse

Load the data and compute week-over-week change.

## Step 3: Evaluate Outputs

Check every required file exists.

## Step 4: Iterate on Errors (max 3 rounds)

### Common Fixes

| Issue | Fix |
|-------|-----|
| Empty chart | Re-run plotting |

## Step 5: Write Executive Summary

Write \`{{results_dir}}/summary.md\`.

## Step 6: Write Validation Report

Write \`{{results_dir}}/validation_report.json\`.

## Step 7: Final Checklist (MANDATORY — do not skip)

### Verification Script

\`\`\`bash
echo "=== FINAL OUTPUT VERIFICATION ==="
for f in {{results_dir}}/report.md {{results_dir}}/summary.md {{results_dir}}/validation_report.json; do test -s "$f" || echo "MISSING $f"; done
\`\`\`

## Tips

- Keep the summary under 200 words.
`;

const DEFAULTS: ResolveInput['defaults'] = {
  agent: 'claude-code',
  provider: undefined,
  model: undefined,
  timeoutSec: 1200,
  maxTimeoutSec: 3600,
};

function input(over: Partial<ResolveInput> = {}): ResolveInput {
  return { runbookText: '# Task\nDo it.\n', systemMessageIndex: 0, jetty: {}, defaults: DEFAULTS, ...over };
}

describe('inferAgentFromModel', () => {
  it.each([
    ['claude-sonnet-4-6', 'claude-code'],
    ['anthropic/claude-sonnet-4.6', 'claude-code'],
    ['gpt-5.5', 'codex'],
    ['o3', 'codex'],
    ['o4-mini', 'codex'],
    ['o1-preview', 'codex'],
    ['openai/gpt-5', 'codex'],
    ['codex-mini-latest', 'codex'],
    ['gemini-2.5-pro', 'gemini-cli'],
    ['gemini/gemini-2.5-pro', 'gemini-cli'],
    ['google/gemini-3.1-pro-preview', 'gemini-cli'],
    ['deepseek.v3.2', 'claude-code'],
  ])('%s → %s', (model, agent) => {
    expect(inferAgentFromModel(model)).toBe(agent);
  });
});

describe('isModelPlaceholder', () => {
  it('treats empty, jetty, runbook and default as "use the runbook"', () => {
    for (const m of [undefined, '', '  ', 'jetty', 'RUNBOOK', 'default'])
      expect(isModelPlaceholder(m)).toBe(true);
    expect(isModelPlaceholder('gpt-5.5')).toBe(false);
  });
});

describe('resolveRunbook', () => {
  it('resolves a realistic Jetty runbook', () => {
    const r = resolveRunbook(
      input({
        runbookText: WEEKLY_REPORT,
        requestModel: 'runbook',
        jetty: { template_variables: { topic: 'widgets' } },
      }),
    );
    expect(r.agent).toBe('claude-code');
    expect(r.model).toBe('anthropic/claude-sonnet-4.6');
    expect(r.provider).toBe('openrouter');
    expect(r.timeoutSec).toBe(1200);
    expect(r.resultsDir).toBe('/app/results');
    expect(r.requiredOutputs).toEqual([
      '/app/results/report.md',
      '/app/results/charts/widgets.png',
      '/app/results/summary.md',
      '/app/results/validation_report.json',
    ]);
    expect(r.primaryOutputs).toEqual(['/app/results/report.md', '/app/results/charts/widgets.png']);
    expect(r.frontmatter['origin']).toEqual({
      url: 'https://github.com/acme/skills/tree/main/weekly-report',
    });
    expect(r.secretReferences).toEqual(['SALES_API']);
    expect(r.undeclaredSecrets).toEqual([]);
  });

  it('gives the agent the filled body with a short header, never the frontmatter or a secret value', () => {
    const r = resolveRunbook(
      input({ runbookText: WEEKLY_REPORT, jetty: { template_variables: { topic: 'widgets' } } }),
    );
    expect(r.renderedRunbook.startsWith('> Results directory: `/app/results`.')).toBe(true);
    expect(r.renderedRunbook).toContain(
      '> Primary outputs: `/app/results/report.md`, `/app/results/charts/widgets.png`.',
    );
    expect(r.renderedRunbook).toContain('> Evaluation: programmatic.');
    expect(r.renderedRunbook).toContain('`$SALES_API_KEY` (Read-only sales API key)');
    expect(r.renderedRunbook).toContain('# Weekly Sales Report');
    expect(r.renderedRunbook).toContain('mkdir -p /app/results/charts');
    expect(r.renderedRunbook).toContain('Authorization: Bearer $SALES_API_KEY');
    expect(r.renderedRunbook).not.toContain('{{');
    expect(r.renderedRunbook).not.toContain('model_provider:');
    expect(r.renderedRunbook.endsWith(r.renderedBody)).toBe(true);
  });

  it('fills an overridden results_dir everywhere, including required outputs', () => {
    const r = resolveRunbook(
      input({
        runbookText: WEEKLY_REPORT,
        jetty: { template_variables: { topic: 'w', results_dir: '/app/out/' } },
      }),
    );
    expect(r.resultsDir).toBe('/app/out');
    expect(r.renderedBody).toContain('mkdir -p /app/out/charts');
    expect(r.requiredOutputs).toContain('/app/out/summary.md');
    expect(r.templateVariables).toEqual({ topic: 'w', results_dir: '/app/out' });
  });

  it('rejects a relative results_dir', () => {
    const err = thrown(() =>
      resolveRunbook(input({ jetty: { template_variables: { results_dir: './results' } } })),
    );
    expect(err.status).toBe(400);
    expect(err.param).toBe('jetty.template_variables.results_dir');
  });

  it('refuses a results_dir outside /app, naming the field and the allowed root', () => {
    for (const dir of [
      '/usr',
      '/',
      '/app',
      '/application',
      '/tmp/results',
      '/app/../etc',
      '/app/./x',
      '/home/agent',
    ]) {
      const err = thrown(() =>
        resolveRunbook(input({ jetty: { template_variables: { results_dir: dir } } })),
      );
      expect(err.status, dir).toBe(400);
      expect(err.param, dir).toBe('jetty.template_variables.results_dir');
      expect(err.message, dir).toContain('must be a directory under /app');
    }
    const ok = resolveRunbook(input({ jetty: { template_variables: { results_dir: '/app//deep/out/' } } }));
    expect(ok.resultsDir).toBe('/app/deep/out');
  });

  it('leaves a variable with no default as written and warns; only a (required) one is a 422', () => {
    const r = resolveRunbook(input({ runbookText: WEEKLY_REPORT }));
    expect(r.renderedBody).toContain("Summarise last week's sales for {{topic}}");
    expect(r.primaryOutputs).toEqual(['/app/results/report.md', '/app/results/charts/{{topic}}.png']);
    expect(r.warnings).toEqual([
      {
        code: 'template_variables_unfilled',
        message: expect.stringContaining('{{topic}} (no default)'),
      },
    ]);
    const required = WEEKLY_REPORT.replace(
      '| Topic | `{{topic}}` | — |',
      '| Topic | `{{topic}}` | *(required)* |',
    );
    const err = thrown(() => resolveRunbook(input({ runbookText: required })));
    expect(err.status).toBe(422);
    expect(err.param).toBe('jetty.template_variables');
    expect(err.message).toContain('`topic` (Product line)');
  });

  it('primary_outputs are headlines, not required files', () => {
    const r = resolveRunbook(
      input({ runbookText: WEEKLY_REPORT, jetty: { template_variables: { topic: 'x' } } }),
    );
    expect(r.requiredOutputs).toEqual([
      '/app/results/report.md',
      '/app/results/charts/x.png',
      '/app/results/summary.md',
      '/app/results/validation_report.json',
    ]);
    const onlyPrimary = resolveRunbook(
      input({ runbookText: '---\nprimary_outputs: [deck.pdf]\n---\n# T\n' }),
    );
    expect(onlyPrimary.requiredOutputs).toEqual([]);
    expect(onlyPrimary.primaryOutputs).toEqual(['/app/results/deck.pdf']);
  });

  it('keeps evaluation: visual, with a warning', () => {
    const r = resolveRunbook(input({ runbookText: '---\nevaluation: visual\n---\n# T\n' }));
    expect(r.frontmatter.evaluation).toBe('visual');
    expect(r.warnings.map((w) => w.code)).toEqual(['evaluation_unknown']);
  });

  it('rejects a non-string template variable with a 400 naming it', () => {
    const err = thrown(() =>
      resolveRunbook(input({ runbookText: WEEKLY_REPORT, jetty: { template_variables: { topic: 7 } } })),
    );
    expect(err.status).toBe(400);
    expect(err.param).toBe('jetty.template_variables.topic');
  });

  it('applies jetty > frontmatter > default for agent, provider and timeout', () => {
    const runbookText = '---\nagent: codex\nmodel_provider: openai\ntimeout_sec: 900\n---\nbody';
    const fromFrontmatter = resolveRunbook(
      input({ runbookText, defaults: { ...DEFAULTS, provider: 'anthropic' } }),
    );
    expect([fromFrontmatter.agent, fromFrontmatter.provider, fromFrontmatter.timeoutSec]).toEqual([
      'codex',
      'openai',
      900,
    ]);
    expect(fromFrontmatter.sources.agent).toEqual({
      from: 'frontmatter',
      param: 'messages[0].content.frontmatter.agent',
    });

    const fromJetty = resolveRunbook(
      input({ runbookText, jetty: { agent: 'opencode', model_provider: 'openrouter', timeout_sec: 60 } }),
    );
    expect([fromJetty.agent, fromJetty.provider, fromJetty.timeoutSec]).toEqual([
      'opencode',
      'openrouter',
      60,
    ]);
    expect(fromJetty.sources.provider).toEqual({ from: 'jetty', param: 'jetty.model_provider' });

    const fromDefaults = resolveRunbook(input({ defaults: { ...DEFAULTS, provider: 'anthropic' } }));
    expect([fromDefaults.agent, fromDefaults.provider, fromDefaults.timeoutSec]).toEqual([
      'claude-code',
      'anthropic',
      1200,
    ]);
  });

  it('takes the request model unless it is a placeholder, then the frontmatter, then the default', () => {
    const runbookText = '---\nmodel: gpt-5.5\n---\nbody';
    expect(resolveRunbook(input({ runbookText, requestModel: 'claude-opus-4-7' })).model).toBe(
      'claude-opus-4-7',
    );
    expect(resolveRunbook(input({ runbookText, requestModel: 'jetty' })).model).toBe('gpt-5.5');
    expect(resolveRunbook(input({ runbookText, requestModel: '' })).model).toBe('gpt-5.5');
    expect(
      resolveRunbook(input({ requestModel: 'default', defaults: { ...DEFAULTS, model: 'm-1' } })).model,
    ).toBe('m-1');
    expect(resolveRunbook(input()).model).toBeUndefined();
  });

  it('infers the agent from the model when nothing names one', () => {
    const fromFrontmatterModel = resolveRunbook(
      input({ runbookText: '---\nmodel: gemini-2.5-pro\n---\nbody' }),
    );
    expect(fromFrontmatterModel.agent).toBe('gemini-cli');
    expect(fromFrontmatterModel.sources.agent).toEqual({
      from: 'inferred',
      param: 'messages[0].content.frontmatter.model',
    });
    expect(resolveRunbook(input({ requestModel: 'gpt-5.5' })).agent).toBe('codex');
    // A named agent beats inference.
    expect(resolveRunbook(input({ requestModel: 'gpt-5.5', jetty: { agent: 'hermes' } })).agent).toBe(
      'hermes',
    );
    // Nothing named at all: the server's default agent.
    expect(
      resolveRunbook(input({ defaults: { ...DEFAULTS, agent: 'opencode', model: 'gpt-5.5' } })).agent,
    ).toBe('opencode');
  });

  it('rejects a timeout above the server maximum, naming the field that set it', () => {
    const err = thrown(() => resolveRunbook(input({ jetty: { timeout_sec: 7200 } })));
    expect(err.status).toBe(400);
    expect(err.param).toBe('jetty.timeout_sec');
    expect(err.message).toContain('3600');

    const fm = thrown(() =>
      resolveRunbook(input({ runbookText: '---\ntimeout_sec: 7200\n---\n', systemMessageIndex: 1 })),
    );
    expect(fm.param).toBe('messages[1].content.frontmatter.timeout_sec');
  });

  it('caps a server default above the maximum instead of failing the request', () => {
    expect(resolveRunbook(input({ defaults: { ...DEFAULTS, timeoutSec: 9999 } })).timeoutSec).toBe(3600);
  });

  it.each([
    [{ agent: 'claud' }, 'jetty.agent', 'must be one of claude-code'],
    [{ model_provider: 'azure' }, 'jetty.model_provider', 'must be one of anthropic'],
    [{ timeout_sec: '60' }, 'jetty.timeout_sec', 'positive whole number'],
    [{ timeout_sec: 1.5 }, 'jetty.timeout_sec', 'positive whole number'],
  ])('rejects jetty %j naming %s', (jetty, param, text) => {
    const err = thrown(() => resolveRunbook(input({ jetty })));
    expect(err.status).toBe(400);
    expect(err.param).toBe(param);
    expect(err.message).toContain(text);
  });

  it('runs plain markdown with no frontmatter, and reports undeclared secrets', () => {
    const r = resolveRunbook(
      input({ runbookText: '# Hello\nUse {{secrets.TOKEN}} to write {{results_dir}}/hello.txt\n' }),
    );
    expect(r.agent).toBe('claude-code');
    expect(r.renderedBody).toBe('# Hello\nUse $TOKEN to write /app/results/hello.txt\n');
    expect(r.undeclaredSecrets).toEqual(['TOKEN']);
    expect(r.requiredOutputs).toEqual([]);
  });
});
