import matter from 'gray-matter';
import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { parseRunbook } from '../../src/runbook/parse.js';
import { thrown } from '../support/errors.js';

function parseError(text: string, index?: number): AppError {
  return thrown(() => parseRunbook(text, index));
}

describe('parseRunbook', () => {
  it('splits frontmatter from body and keeps the raw text', () => {
    const text = '---\nagent: codex\nmodel: gpt-5.5\n---\n# Task\n\nDo it.\n';
    const parsed = parseRunbook(text);
    expect(parsed.frontmatter.agent).toBe('codex');
    expect(parsed.frontmatter.model).toBe('gpt-5.5');
    expect(parsed.body).toBe('# Task\n\nDo it.\n');
    expect(parsed.raw).toBe(text);
    expect(parsed.hasFrontmatter).toBe(true);
  });

  it('accepts plain markdown with no frontmatter at all', () => {
    const text = '# Just a task\n\nWrite hello.txt.\n';
    const parsed = parseRunbook(text);
    expect(parsed.frontmatter).toEqual({});
    expect(parsed.body).toBe(text);
    expect(parsed.hasFrontmatter).toBe(false);
  });

  it('treats a leading horizontal rule of four dashes as markdown, not frontmatter', () => {
    const parsed = parseRunbook('----\n# Title\n');
    expect(parsed.hasFrontmatter).toBe(false);
  });

  it('finds frontmatter after leading blank lines', () => {
    const parsed = parseRunbook('\n\n---\nagent: gemini-cli\n---\nbody');
    expect(parsed.frontmatter.agent).toBe('gemini-cli');
    expect(parsed.body).toBe('body');
  });

  it('keeps unknown keys as written', () => {
    const parsed = parseRunbook(
      '---\nagent: claude-code\norigin:\n  url: https://example.com/skill\n  attribution: {author: ann}\ncustom_flag: true\n---\nbody',
    );
    expect(parsed.frontmatter['origin']).toEqual({
      url: 'https://example.com/skill',
      attribution: { author: 'ann' },
    });
    expect(parsed.frontmatter['custom_flag']).toBe(true);
  });

  it('normalizes version, primary_outputs and secrets', () => {
    const parsed = parseRunbook(
      '---\nversion: 1.0\nprimary_outputs: report.pdf\nsecrets:\n  API: {env: API_KEY, description: "the key"}\n  OPT: {env: OPT_KEY, required: false}\n---\n',
    );
    expect(parsed.frontmatter.version).toBe('1.0');
    expect(parsed.frontmatter.primary_outputs).toEqual(['report.pdf']);
    expect(parsed.frontmatter.secrets).toEqual({
      API: { env: 'API_KEY', description: 'the key', required: true },
      OPT: { env: 'OPT_KEY', required: false },
    });
  });

  it('keeps a quoted version string as is', () => {
    expect(parseRunbook('---\nversion: "1.0.0"\n---\n').frontmatter.version).toBe('1.0.0');
  });

  it('treats a key with no value as not set', () => {
    const parsed = parseRunbook('---\nmodel:\nagent: codex\nsecrets:\n---\n');
    expect(parsed.frontmatter.model).toBeUndefined();
    expect(parsed.frontmatter.secrets).toBeUndefined();
    expect(parsed.frontmatter.agent).toBe('codex');
  });

  it('rejects a misspelt agent, naming the field, the accepted values and what was given', () => {
    const err = parseError('---\nagent: claud\n---\nbody');
    expect(err.status).toBe(400);
    expect(err.param).toBe('messages[0].content.frontmatter.agent');
    expect(err.message).toContain(
      'frontmatter `agent` must be one of claude-code, codex, gemini-cli, opencode, hermes; got "claud"',
    );
  });

  it('uses the given system message index in the param', () => {
    const err = parseError('---\nmodel_provider: replicate\n---\n', 2);
    expect(err.param).toBe('messages[2].content.frontmatter.model_provider');
    expect(err.message).toContain(
      'must be one of anthropic, openai, google, openrouter, bedrock, vertex, simulated',
    );
  });

  it.each([
    ['timeout_sec: "600"', 'timeout_sec', 'positive whole number'],
    ['timeout_sec: 0', 'timeout_sec', 'positive whole number'],
    ['evaluation: [a]', 'evaluation', 'non-empty string'],
    ['primary_outputs: [1, 2]', 'primary_outputs', 'relative to results_dir'],
    ['model: 42', 'model', 'model slug'],
    [`model: ${'m'.repeat(201)}`, 'model', 'of 1 to 200 characters'],
    [`judge_model: ${'j'.repeat(201)}`, 'judge_model', 'of 1 to 200 characters'],
    ['secrets: [A, B]', 'secrets', 'mapping of NAME'],
    ['version: true', 'version', 'version string'],
  ])('rejects `%s` naming %s', (line, key, form) => {
    const err = parseError(`---\n${line}\n---\n`);
    expect(err.param).toBe(`messages[0].content.frontmatter.${key}`);
    expect(err.message).toContain(`frontmatter \`${key}\``);
    expect(err.message).toContain(form);
  });

  it('keeps an evaluation Jetty’s runbooks use beyond programmatic and rubric', () => {
    expect(parseRunbook('---\nevaluation: visual\n---\n# T\n').frontmatter.evaluation).toBe('visual');
  });

  it('points into a secret entry that is wrong', () => {
    const err = parseError('---\nsecrets:\n  API: {env: "no-dashes", description: "bad env"}\n---\n');
    expect(err.param).toBe('messages[0].content.frontmatter.secrets.API.env');
    expect(err.message).toContain('environment variable name');
    expect(err.message).toContain('got "no-dashes"');
  });

  it('a secret without env uses its own name, as Jetty writes them', () => {
    const parsed = parseRunbook(
      '---\nsecrets:\n  SERP_API_KEY: {description: "search", required: true}\n---\n',
    );
    expect(parsed.frontmatter.secrets).toEqual({
      SERP_API_KEY: { env: 'SERP_API_KEY', description: 'search', required: true },
    });
  });

  it('reports every bad key in one message', () => {
    const err = parseError('---\nagent: x\ntimeout_sec: 0\n---\n');
    expect(err.param).toBe('messages[0].content.frontmatter.agent');
    expect(err.message).toContain('`agent`');
    expect(err.message).toContain('`timeout_sec`');
  });

  it('reports unparsable YAML with its line in the runbook', () => {
    const err = parseError('---\nagent: claude-code\nmodel: [unclosed\n---\n# body');
    expect(err.status).toBe(400);
    expect(err.param).toBe('messages[0].content');
    expect(err.message).toMatch(/cannot be parsed at line \d+/);
    expect(err.message).toContain('line 4');
  });

  it('counts leading blank lines in the reported line', () => {
    const err = parseError('\n\n---\na: 1\na: 2\n---\n');
    expect(err.message).toContain('line 5');
    expect(err.message).toContain('duplicated mapping key');
  });

  it('rejects frontmatter that never closes', () => {
    const err = parseError('---\nagent: codex\n# Title\n');
    expect(err.param).toBe('messages[0].content');
    expect(err.message).toContain('never closes');
  });

  it('rejects frontmatter that is not a mapping', () => {
    const err = parseError('---\n- a\n- b\n---\n');
    expect(err.param).toBe('messages[0].content.frontmatter');
    expect(err.message).toContain('got a list');
  });

  it('never evaluates JavaScript frontmatter', () => {
    const marker = '__runbook_js_frontmatter_ran';
    const err = parseError(`---js\n{ agent: (globalThis.${marker} = true, 'codex') }\n---\nbody`);
    expect(err.status).toBe(400);
    expect(err.message).toContain('only YAML frontmatter');
    expect((globalThis as Record<string, unknown>)[marker]).toBeUndefined();
  });

  it('parses identical texts independently (no gray-matter cache)', () => {
    const text = '---\nagent: codex\nextra: {n: 1}\n---\nbody';
    const a = parseRunbook(text);
    (a.frontmatter['extra'] as { n: number }).n = 99;
    a.frontmatter.agent = 'hermes';
    const b = parseRunbook(text);
    expect(b.frontmatter.agent).toBe('codex');
    expect(b.frontmatter['extra']).toEqual({ n: 1 });
    // gray-matter's module-level cache (untyped) must not hold our text.
    const cache = (matter as unknown as { cache: Record<string, unknown> }).cache;
    expect(Object.keys(cache)).not.toContain(text);
  });

  it('rejects bad YAML every time, not only the first', () => {
    const text = '---\nagent: [\n---\nbody';
    expect(() => parseRunbook(text)).toThrow(AppError);
    expect(() => parseRunbook(text)).toThrow(AppError);
  });
});
