import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultSteps } from '../../src/providers/simulated/default-policy.js';
import type { SimStep } from '../../src/providers/simulated/index.js';
import {
  compileTurns,
  parseSimulateScript,
  SimulateScriptError,
  validateSimulateScript,
} from '../../src/providers/simulated/index.js';

const FENCE = '```';

/** A runbook whose script block holds `body`, preceded by a few lines of prose. */
function runbook(body: string): string {
  return `---\nagent: claude-code\n---\n# Weekly report\n\n${FENCE}simulate\n${body}\n${FENCE}\n\nMore text.\n`;
}
/** Line of the runbook on which the script's first line sits. */
const FIRST_SCRIPT_LINE = 7;

function steps(body: string): SimStep[] {
  const parsed = parseSimulateScript(runbook(body));
  if (parsed === null) throw new Error('no script found');
  return parsed;
}

function errorOf(text: string): SimulateScriptError {
  try {
    parseSimulateScript(text);
  } catch (err) {
    if (err instanceof SimulateScriptError) return err;
    throw err;
  }
  throw new Error('expected the script to be rejected');
}

describe('parseSimulateScript: finding the block', () => {
  it('returns null when the runbook has no simulate block', () => {
    expect(parseSimulateScript('# A runbook\n\n```bash\nls\n```\n')).toBeNull();
  });

  it('reads the script example from the design document', () => {
    const text = [
      '```simulate',
      '- run: mkdir -p /app/results && echo hi > /app/results/hello.txt',
      '- sleep_ms: 500',
      '- say: wrote hello.txt',
      '```',
    ].join('\n');
    expect(parseSimulateScript(text)).toEqual([
      { kind: 'run', command: 'mkdir -p /app/results && echo hi > /app/results/hello.txt', line: 2 },
      { kind: 'sleep', ms: 500, line: 3 },
      { kind: 'say', text: 'wrote hello.txt', line: 4 },
    ]);
  });

  it('ignores a simulate fence shown as an example inside another code block', () => {
    const text = ['````markdown', '```simulate', '- say: example only', '```', '````', 'Prose.'].join('\n');
    expect(parseSimulateScript(text)).toBeNull();
  });

  it('accepts tilde fences and an indented fence', () => {
    expect(steps('- say: a')).toHaveLength(1);
    expect(parseSimulateScript('~~~simulate\n- say: tilde\n~~~\n')).toEqual([
      { kind: 'say', text: 'tilde', line: 2 },
    ]);
    expect(parseSimulateScript('  ```simulate\n  - say: indented\n  ```\n')).toEqual([
      { kind: 'say', text: 'indented', line: 2 },
    ]);
  });

  it('rejects a second block, naming both lines', () => {
    const err = errorOf('```simulate\n- say: a\n```\n\n```simulate\n- say: b\n```\n');
    expect(err.line).toBe(5);
    expect(err.message).toContain('line 5');
    expect(err.message).toContain('line 1');
  });

  it('rejects a block that is never closed', () => {
    const err = errorOf('intro\n```simulate\n- say: a\n');
    expect(err.line).toBe(2);
    expect(err.message).toMatch(/never closed/);
  });

  it('rejects an empty block', () => {
    const err = errorOf('```simulate\n\n# nothing yet\n```\n');
    expect(err.line).toBe(1);
    expect(err.message).toMatch(/no steps/);
  });
});

describe('parseSimulateScript: values', () => {
  it('reads plain values, dropping a trailing comment as YAML does', () => {
    expect(steps('- run: ls -la /app   # list\n- say: 42')).toEqual([
      { kind: 'run', command: 'ls -la /app', line: FIRST_SCRIPT_LINE },
      { kind: 'say', text: '42', line: FIRST_SCRIPT_LINE + 1 },
    ]);
    expect(steps('- run: curl http://x/a#frag')[0]).toMatchObject({ command: 'curl http://x/a#frag' });
  });

  it('reads single-quoted values with doubled quotes', () => {
    expect(steps(`- say: 'it''s done: all #3 files'  # comment`)[0]).toMatchObject({
      text: "it's done: all #3 files",
    });
  });

  it('reads double-quoted values with YAML escapes', () => {
    expect(steps('- say: "tab\\there\\nnew line \\"q\\" \\u00e9 \\x41 \\\\"')[0]).toMatchObject({
      text: 'tab\there\nnew line "q" é A \\',
    });
  });

  it('reads a literal block scalar as a multi-line command', () => {
    const body = [
      '- run: |',
      '    mkdir -p /app/results',
      '    cat > /app/results/a.md <<EOF',
      '    # Title',
      '',
      '      indented line',
      '    EOF',
      '',
      '- say: done',
    ].join('\n');
    expect(steps(body)).toEqual([
      {
        kind: 'run',
        command: 'mkdir -p /app/results\ncat > /app/results/a.md <<EOF\n# Title\n\n  indented line\nEOF\n',
        line: FIRST_SCRIPT_LINE,
      },
      { kind: 'say', text: 'done', line: FIRST_SCRIPT_LINE + 8 },
    ]);
  });

  it('honours block chomping indicators', () => {
    expect(steps('- say: |-\n    no newline\n- say: x')[0]).toMatchObject({ text: 'no newline' });
    expect(steps('- say: |+\n    kept\n\n- say: x')[0]).toMatchObject({ text: 'kept\n\n' });
    expect(steps('- say: |2\n     one space kept\n- say: x')[0]).toMatchObject({ text: ' one space kept\n' });
  });

  it('reads integers for sleep_ms and fail, and accepts a list indented inside the fence', () => {
    expect(steps('  - sleep_ms: 250\n  - fail: 503')).toEqual([
      { kind: 'sleep', ms: 250, line: FIRST_SCRIPT_LINE },
      { kind: 'fail', status: 503, line: FIRST_SCRIPT_LINE + 1 },
    ]);
  });
});

describe('parseSimulateScript: errors name the line and the fix', () => {
  const cases: Array<[string, string, number, RegExp]> = [
    ['unknown step', '- say: a\n- write: x', 1, /unknown step `write`.*run, say, sleep_ms, fail/],
    ['not a list', 'say: hello', 0, /expected a list item/],
    ['missing value', '- run:', 0, /`run` has no value/],
    ['colon in a plain value', '- say: note: this', 0, /single quotes/],
    ['unterminated single quote', "- say: 'open", 0, /not closed on this line/],
    ['unterminated double quote', '- say: "open', 0, /not closed on this line/],
    ['bad escape', '- say: "a\\qb"', 0, /unknown escape `\\q`/],
    ['text after a quote', "- say: 'a' b", 0, /after the closing quote/],
    ['two keys in one item', '- run: ls\n  say: hi', 1, /second key `say`/],
    ['continuation line', '- say: one\n    two', 1, /continues the step above/],
    ['misaligned item', '  - say: a\n- say: b', 1, /same column/],
    ['tab indentation', '\t- say: a', 0, /tab/],
    ['sleep_ms not a number', '- sleep_ms: soon', 0, /whole number of milliseconds/],
    ['sleep_ms quoted', '- sleep_ms: "500"', 0, /whole number/],
    ['sleep_ms too long', '- sleep_ms: 900000', 0, /at most 300000/],
    ['fail not an error status', '- fail: 200', 0, /from 400 to 599/],
    ['folded scalar', '- say: >\n    folded', 0, /folded block scalars/],
    ['empty block scalar', '- run: |\n- say: x', 0, /empty/],
    ['block scalar at the key column', '- run: |\n  echo hi', 0, /empty/],
    ['flow mapping', '- {run: ls}', 0, /flow mappings/],
    ['alias-like value', '- say: *star', 0, /single quotes/],
    ['empty item', '-\n  run: ls', 0, /empty list item/],
    ['step after fail', '- fail: 500\n- say: never', 1, /never reached.*line 7/],
    ['say before fail in one turn', '- say: hi\n- fail: 401', 1, /`say` on line 7 would never be shown/],
  ];
  it.each(cases)('%s', (_name, body, offset, pattern) => {
    const err = errorOf(runbook(body));
    expect(err.line).toBe(FIRST_SCRIPT_LINE + offset);
    expect(err.message).toContain(`line ${FIRST_SCRIPT_LINE + offset}:`);
    expect(err.message).toMatch(pattern);
    expect(err.status).toBe(422);
    expect(err.code).toBe('invalid_simulate_script');
  });

  it('allows say before fail when a run separates them', () => {
    expect(steps('- say: hi\n- run: ls\n- fail: 401').map((s) => s.kind)).toEqual(['say', 'run', 'fail']);
  });
});

describe('validateSimulateScript', () => {
  it('returns the steps, null steps without a block, or the message', () => {
    expect(validateSimulateScript(runbook('- say: hi'))).toEqual({
      ok: true,
      steps: [{ kind: 'say', text: 'hi', line: FIRST_SCRIPT_LINE }],
    });
    expect(validateSimulateScript('# no script')).toEqual({ ok: true, steps: null });
    const bad = validateSimulateScript(runbook('- dance: now'));
    expect(bad.ok).toBe(false);
    if (!bad.ok)
      expect(bad.message).toMatch(/^Invalid `simulate` block in the runbook, line 7: unknown step/);
  });
});

describe('compileTurns', () => {
  it('ends a turn at each run, and waits after a run for the pause that follows it', () => {
    const plan = compileTurns(
      steps('- say: starting\n- run: A\n- sleep_ms: 500\n- say: X\n- run: B\n- say: bye'),
    );
    expect(plan.turns).toEqual([
      {
        index: 0,
        delayMs: 0,
        items: [
          { kind: 'text', text: 'starting' },
          { kind: 'tool', command: 'A' },
        ],
        failStatus: null,
      },
      {
        index: 1,
        delayMs: 500,
        items: [
          { kind: 'text', text: 'X' },
          { kind: 'tool', command: 'B' },
        ],
        failStatus: null,
      },
      { index: 2, delayMs: 0, items: [{ kind: 'text', text: 'bye' }], failStatus: null },
    ]);
  });

  it('keeps a pause between two pieces of content where it was written', () => {
    const plan = compileTurns(steps('- say: a\n- sleep_ms: 100\n- sleep_ms: 50\n- run: B'));
    expect(plan.turns[0]?.items).toEqual([
      { kind: 'text', text: 'a' },
      { kind: 'pause', ms: 150 },
      { kind: 'tool', command: 'B' },
    ]);
  });

  it('closes a script that ends on a run with a final text', () => {
    const plan = compileTurns(steps('- run: A\n- sleep_ms: 10'));
    expect(plan.turns).toHaveLength(2);
    expect(plan.turns[1]).toEqual({
      index: 1,
      delayMs: 10,
      items: [{ kind: 'text', text: 'Done.' }],
      failStatus: null,
    });
  });

  it('puts a failure on the turn it falls in, after its pause', () => {
    const plan = compileTurns(steps('- run: A\n- sleep_ms: 20\n- fail: 429'));
    expect(plan.turns[1]).toEqual({ index: 1, delayMs: 20, items: [], failStatus: 429 });
  });
});

describe('default policy (no script)', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('one shell command creates every required file, even with awkward names', () => {
    dir = mkdtempSync(join(tmpdir(), 'sim-default-'));
    const resultsDir = join(dir, 'results');
    const outputs = [
      join(resultsDir, 'report.md'),
      join(resultsDir, 'data', 'metrics.json'),
      join(resultsDir, 'it\'s a "weird" $(touch pwned) name.txt'),
      join(resultsDir, 'report.md'),
    ];
    const plan = compileTurns(defaultSteps({ requiredOutputs: outputs, workdir: dir }));
    expect(plan.turns).toHaveLength(2);
    const tool = plan.turns[0]?.items.find((i) => i.kind === 'tool');
    if (tool?.kind !== 'tool') throw new Error('turn 0 has no tool call');

    execFileSync('/bin/sh', ['-c', tool.command], { cwd: dir });

    for (const file of outputs) expect(statSync(file).size).toBeGreaterThan(0);
    expect(JSON.parse(readFileSync(join(resultsDir, 'data', 'metrics.json'), 'utf8'))).toMatchObject({
      placeholder: true,
    });
    expect(() => statSync(join(dir!, 'pwned'))).toThrow();
    const closing = plan.turns[1]?.items[0];
    expect(closing).toEqual({ kind: 'text', text: expect.stringContaining(join(resultsDir, 'report.md')) });
    expect(closing?.kind === 'text' && closing.text.split('report.md').length).toBe(2);
  });

  it('resolves relative paths against the working directory', () => {
    dir = mkdtempSync(join(tmpdir(), 'sim-default-'));
    const plan = compileTurns(defaultSteps({ requiredOutputs: ['results/out.csv'], workdir: dir }));
    const tool = plan.turns[0]?.items.find((i) => i.kind === 'tool');
    if (tool?.kind !== 'tool') throw new Error('turn 0 has no tool call');
    execFileSync('/bin/sh', ['-c', tool.command], { cwd: tmpdir() });
    expect(statSync(join(dir, 'results', 'out.csv')).isFile()).toBe(true);
  });

  it('with nothing required, only says so in one turn', () => {
    const plan = compileTurns(defaultSteps({ requiredOutputs: [], workdir: '/app' }));
    expect(plan.turns).toHaveLength(1);
    expect(plan.turns[0]?.items).toEqual([
      { kind: 'text', text: expect.stringMatching(/no required output files/) },
    ]);
  });
});
