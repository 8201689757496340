import { describe, expect, it } from 'vitest';
import { listedOutputFiles, requiredOutputs } from '../../src/runbook/outputs.js';
import { classifyDefault, parametersTable } from '../../src/runbook/parameters.js';
import {
  fillTemplate,
  planTemplateVariables,
  renderSecretReferences,
  templateVariablesIn,
  validateTemplateVariables,
  withBuiltinVariables,
} from '../../src/runbook/template.js';
import { thrown } from '../support/errors.js';

const fill = (text: string, vars: Record<string, string>) => fillTemplate(text, withBuiltinVariables(vars));

describe('fillTemplate', () => {
  it('fills placeholders, with or without spaces inside the braces', () => {
    expect(fill('Sample {{sample_size}} rows of {{ topic }}.', { sample_size: '10', topic: 'cats' })).toBe(
      'Sample 10 rows of cats.',
    );
  });

  it('has results_dir by default, and lets the caller override it', () => {
    expect(fill('{{results_dir}}/summary.md', {})).toBe('/app/results/summary.md');
    expect(fill('{{results_dir}}/summary.md', { results_dir: '/out' })).toBe('/out/summary.md');
  });

  it('fills placeholders inside code fences', () => {
    const text = 'Run:\n\n```bash\nmkdir -p {{results_dir}}\nls {{ results_dir }}\n```\n';
    expect(fill(text, {})).toBe('Run:\n\n```bash\nmkdir -p /app/results\nls /app/results\n```\n');
  });

  it('leaves {{secrets.NAME}} alone', () => {
    expect(fill('curl -H "key: {{secrets.API_KEY}}" {{url}}', { url: 'https://x' })).toBe(
      'curl -H "key: {{secrets.API_KEY}}" https://x',
    );
  });

  it('leaves GitHub Actions expressions alone', () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal GitHub Actions expression is the point
    const text = 'token: ${{ secrets.GITHUB_TOKEN }}\nsha: ${{ github.sha }}';
    expect(fill(text, {})).toBe(text);
  });

  it('does not expand a value that itself contains a placeholder', () => {
    expect(fill('{{a}}', { a: '{{b}}' })).toBe('{{b}}');
  });

  it('leaves a placeholder it has no value for exactly as written', () => {
    expect(fill('if [ "{{ notes }}" = "{{notes}}" ]; then {{x}}; fi', {})).toBe(
      'if [ "{{ notes }}" = "{{notes}}" ]; then {{x}}; fi',
    );
  });

  it('lists the variables a text uses', () => {
    expect(templateVariablesIn('{{a}} {{ b.c }} {{secrets.X}} {{a}}')).toEqual(['a', 'b.c']);
  });
});

const PARAMETERS = [
  '# Report',
  '',
  '## Parameters',
  '',
  '| Parameter | Template Variable | Default | Description |',
  '|-----------|-------------------|---------|-------------|',
  '| Topic | `{{topic}}` | *(required)* | What the report is about |',
  '| Audience | `{{audience}}` | **(required)** | Who reads it |',
  '| Style | `{{style}}` | `formal` | How it reads |',
  '| Output | `{{output_file}}` | `{{results_dir}}/report.md` | Where it goes |',
  '| Results | `{{results_dir}}` | `./results` | Output directory (local default) |',
  '| Notes | `{{notes}}` | *(optional)* | Extra guidance |',
  '| Extra | `{{extra}}` | *(empty)* | Anything else |',
  '| Source | `{{source}}` | *(inferred)* | Inferred from the inputs |',
  '| Pipe | `{{pipe}}` | a \\| b | An escaped pipe in a default |',
  '| Blank | `{{blank}}` |  | No default at all |',
  '',
  '## Step 1',
  '',
  'Write about {{topic}} for {{audience}} in a {{style}} style to {{output_file}}. {{undeclared_prose}}',
  '',
  '```python',
  'print(f"{{escaped}} and {{topic}}")',
  '```',
  '',
  '| Not | Parameters | Default |',
  '|-----|------------|---------|',
  '| {{later}} | x | y |',
].join('\n');

describe('parametersTable', () => {
  it('reads each row: the variable, its default or marker, its description', () => {
    const table = parametersTable(PARAMETERS);
    expect(table.map((p) => [p.name, p.kind, p.default])).toEqual([
      ['topic', 'required', undefined],
      ['audience', 'required', undefined],
      ['style', 'value', 'formal'],
      ['output_file', 'value', '{{results_dir}}/report.md'],
      ['results_dir', 'value', './results'],
      ['notes', 'optional', undefined],
      ['extra', 'empty', undefined],
      ['source', 'inferred', undefined],
      ['pipe', 'value', 'a | b'],
      ['blank', 'none', undefined],
    ]);
    expect(table[0]!.description).toBe('What the report is about');
  });

  it('finds the columns by header, in any order, and ignores tables outside the section', () => {
    const md =
      '## Parameters\n\n| Default | Description | Variable |\n|---|---|---|\n| 5 | How many | `n` |\n';
    expect(parametersTable(md)).toEqual([
      { name: 'n', kind: 'value', default: '5', description: 'How many' },
    ]);
    expect(parametersTable('# T\n\n| Variable | Default |\n|---|---|\n| `{{x}}` | 1 |\n')).toEqual([]);
  });

  it('classifies the markers Jetty’s runbooks write', () => {
    expect(classifyDefault('*(required)*').kind).toBe('required');
    expect(classifyDefault('Required').kind).toBe('required');
    expect(classifyDefault('_(optional)_').kind).toBe('optional');
    expect(classifyDefault('(inferred from the CSV)').kind).toBe('inferred');
    expect(classifyDefault('—').kind).toBe('none');
    expect(classifyDefault('"quoted value"')).toEqual({ kind: 'value', default: 'quoted value' });
  });
});

describe('planTemplateVariables', () => {
  const given = { topic: 'cats', audience: 'vets' };
  const plan = (g: Record<string, string>, field?: 'init_params.vars') =>
    planTemplateVariables({
      texts: [PARAMETERS],
      given: g,
      table: parametersTable(PARAMETERS),
      ...(field ? { field } : {}),
    });

  it('takes the caller’s values, then the table’s defaults; results_dir is never the table’s', () => {
    const p = plan({ ...given, style: 'casual' });
    expect(p.values).toMatchObject({
      topic: 'cats',
      style: 'casual',
      output_file: '/app/results/report.md',
      results_dir: '/app/results',
      pipe: 'a | b',
    });
    expect(p.defaulted).toEqual(['output_file', 'pipe']);
  });

  it('leaves optional, empty, inferred, no-default and undeclared ones as written, and lists them', () => {
    const p = plan(given);
    expect(p.unfilled).toEqual([
      { name: 'notes', why: 'optional' },
      { name: 'extra', why: 'empty' },
      { name: 'source', why: 'inferred' },
      { name: 'blank', why: 'none' },
      { name: 'undeclared_prose', why: 'undeclared' },
      { name: 'later', why: 'undeclared' },
    ]);
    // `{{escaped}}` appears only in fenced code and no table declares it: code, not a variable.
    expect(p.unfilled.map((u) => u.name)).not.toContain('escaped');
    expect(fillTemplate(PARAMETERS, p.values)).toContain('print(f"{{escaped}} and cats")');
  });

  it('a required variable not given is one 422 naming each with its description', () => {
    const err = thrown(() => plan({}));
    expect(err.status).toBe(422);
    expect(err.code).toBe('missing_template_variables');
    expect(err.param).toBe('jetty.template_variables');
    expect(err.message).toContain('`topic` (What the report is about), `audience` (Who reads it)');
    expect(err.message).toContain('"jetty": {"template_variables": {"topic":"...","audience":"..."}}');
    expect(thrown(() => plan({ topic: 'x' })).message).toContain('a variable as required');
  });

  it('on /api/v1 the 422 shows init_params.vars, the field that caller uses', () => {
    const err = thrown(() => plan({}, 'init_params.vars'));
    expect(err.param).toBe('init_params.vars');
    expect(err.message).toContain('init_params={"vars": {"topic":"...","audience":"..."}}');
    expect(err.message).not.toContain('template_variables');
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
