import { describe, expect, it } from 'vitest';
import { listedOutputFiles, requiredOutputs } from '../../src/runbook/outputs.js';
import {
  renderSecretReferences,
  renderTemplate,
  templateVariablesIn,
  validateTemplateVariables,
} from '../../src/runbook/template.js';
import { thrown } from '../support/errors.js';

describe('renderTemplate', () => {
  it('fills placeholders, with or without spaces inside the braces', () => {
    expect(
      renderTemplate('Sample {{sample_size}} rows of {{ topic }}.', { sample_size: '10', topic: 'cats' }),
    ).toBe('Sample 10 rows of cats.');
  });

  it('has results_dir by default, and lets the caller override it', () => {
    expect(renderTemplate('{{results_dir}}/summary.md', {})).toBe('/app/results/summary.md');
    expect(renderTemplate('{{results_dir}}/summary.md', { results_dir: '/out' })).toBe('/out/summary.md');
  });

  it('fills placeholders inside code fences', () => {
    const text = 'Run:\n\n```bash\nmkdir -p {{results_dir}}\nls {{ results_dir }}\n```\n';
    expect(renderTemplate(text, {})).toBe('Run:\n\n```bash\nmkdir -p /app/results\nls /app/results\n```\n');
  });

  it('leaves {{secrets.NAME}} alone and does not ask for it', () => {
    expect(renderTemplate('curl -H "key: {{secrets.API_KEY}}" {{url}}', { url: 'https://x' })).toBe(
      'curl -H "key: {{secrets.API_KEY}}" https://x',
    );
  });

  it('leaves GitHub Actions expressions alone', () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal GitHub Actions expression is the point
    const text = 'token: ${{ secrets.GITHUB_TOKEN }}\nsha: ${{ github.sha }}';
    expect(renderTemplate(text, {})).toBe(text);
  });

  it('does not expand a value that itself contains a placeholder', () => {
    expect(renderTemplate('{{a}}', { a: '{{b}}' })).toBe('{{b}}');
  });

  it('names every missing variable in one 422 pointing at jetty.template_variables', () => {
    const err = thrown(() => renderTemplate('{{sample_size}} {{topic}} {{sample_size}} {{results_dir}}', {}));
    expect(err.status).toBe(422);
    expect(err.param).toBe('jetty.template_variables');
    expect(err.message).toContain('`sample_size`, `topic`');
    expect(err.message).toContain('jetty.template_variables');
    expect(err.message).not.toContain('results_dir');
  });

  it('lists the variables a text uses', () => {
    expect(templateVariablesIn('{{a}} {{ b.c }} {{secrets.X}} {{a}}')).toEqual(['a', 'b.c']);
  });
});

describe('validateTemplateVariables', () => {
  it('accepts an object of strings, and absence', () => {
    expect(validateTemplateVariables({ a: '1', results_dir: '/x' })).toEqual({ a: '1', results_dir: '/x' });
    expect(validateTemplateVariables(undefined)).toEqual({});
  });

  it('rejects a number without coercing it, naming the variable', () => {
    const err = thrown(() => validateTemplateVariables({ ok: 'x', sample_size: 10 }));
    expect(err.status).toBe(400);
    expect(err.param).toBe('jetty.template_variables.sample_size');
    expect(err.message).toContain('must be a string');
    expect(err.message).toContain('not converted');
    expect(err.message).toContain('"sample_size": "10"');
  });

  it.each([[true], [{ nested: 'x' }], [null], [['a']]])('rejects the value %j', (value) => {
    const err = thrown(() => validateTemplateVariables({ v: value }));
    expect(err.param).toBe('jetty.template_variables.v');
  });

  it('rejects a non-object', () => {
    const err = thrown(() => validateTemplateVariables(['results_dir']));
    expect(err.param).toBe('jetty.template_variables');
  });
});

describe('renderSecretReferences', () => {
  it('turns secret placeholders into environment variable references', () => {
    const out = renderSecretReferences('key={{secrets.API}} other={{ secrets.OTHER }}x', {
      API: { env: 'EXAMPLE_API_KEY' },
    });
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal shell ${VAR} is the point
    expect(out).toBe('key=$EXAMPLE_API_KEY other=${OTHER}x');
  });
});

describe('required outputs', () => {
  it('reads tables, bullets, backticks and links, only under the REQUIRED OUTPUT FILES heading', () => {
    const md = [
      '# Task',
      '| `/app/results/not-this.md` | outside the section |',
      '## REQUIRED OUTPUT FILES (MANDATORY)',
      '| File | Description |',
      '|------|-------------|',
      '| `/app/results/summary.md` | Executive summary |',
      '| /app/results/data/out.csv | Data, format text/csv |',
      '| **report.md** | relative to results_dir |',
      '| Every file must exist | prose row |',
      '| `/app/results/figures/*.png` | a glob, not one file |',
      '',
      '- `/app/results/extra.json` — extra',
      '- [ ] /app/results/checked.txt',
      '- [notes.md](./notes.md)',
      '- Do not write `scores.json`.',
      '```bash',
      '# REQUIRED OUTPUT FILES inside a fence is not a heading',
      '- /app/results/fenced.txt',
      '```',
      '### Details',
      '- `/app/results/nested.txt`',
      '## Parameters',
      '- `/app/results/param.txt`',
    ].join('\n');
    expect(listedOutputFiles(md)).toEqual([
      '/app/results/summary.md',
      '/app/results/data/out.csv',
      'report.md',
      '/app/results/extra.json',
      '/app/results/checked.txt',
      'notes.md',
      '/app/results/nested.txt',
    ]);
  });

  it('makes relative paths absolute, keeps absolute ones, adds primary outputs once', () => {
    const body =
      '## Required Output Files\n| Path |\n|---|\n| summary.md |\n| /elsewhere/log.txt |\n| chart.png |';
    expect(
      requiredOutputs({ body, frontmatter: { primary_outputs: ['chart.png', 'deck/slides.pdf'] } }, '/out'),
    ).toEqual(['/out/summary.md', '/elsewhere/log.txt', '/out/chart.png', '/out/deck/slides.pdf']);
  });
});
