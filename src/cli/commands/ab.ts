import { readFile, stat } from 'node:fs/promises';
import { formatBytes } from '../../events/display.js';
import type { ExperimentView, JettyClient } from '../client.js';
import {
  type CliContext,
  CONNECTION_HELP,
  CONNECTION_OPTIONS,
  type Command,
  connect,
  intFlag,
  parse,
  println,
} from '../command.js';
import { EXIT, EXIT_CODES_HELP, type ExitCode, usageError } from '../exit.js';

const OPTIONS = {
  ...CONNECTION_OPTIONS,
  variant: { type: 'string', short: 'V', multiple: true },
  repeats: { type: 'string', short: 'n' },
  provider: { type: 'string', short: 'p' },
  var: { type: 'string', multiple: true },
  'judge-model': { type: 'string' },
  'judge-provider': { type: 'string' },
  json: { type: 'boolean' },
} as const;

const HELP = `usage: jetty ab RUNBOOK.md --variant AGENT[:MODEL][@PROVIDER] --variant ... [-n REPEATS]

An A/B experiment: runs the runbook REPEATS times on each variant, grades every run with the same
grader (the runbook's verification script, or one judge model), and prints the table as it fills:
runs ended, passed, pass rate with its 95% interval, mean score, median duration, mean cost, tokens.
Ctrl-C cancels the runs not yet ended.

options:
  -V, --variant SPEC     AGENT, AGENT:MODEL or AGENT:MODEL@PROVIDER (e.g. claude-code,
                         codex:gpt-5.5); at least two, or one to measure it alone
  -n, --repeats N        runs per variant (default 3)
  -p, --provider NAME    the model provider of variants that name none (e.g. simulated)
      --var NAME=VALUE   a template variable; repeat for more
      --judge-model SLUG the judge of a rubric runbook (default: the runbook's, else the server's)
      --judge-provider NAME
      --json             print the final experiment as JSON instead of the table
${CONNECTION_HELP}
  -h, --help             this help

${EXIT_CODES_HELP}`;

type Values = ReturnType<typeof parse<typeof OPTIONS>>['values'];

export const abCommand: Command = {
  name: 'ab',
  summary: 'A/B-test variants (agent, model) on a runbook, graded by one grader',
  help: HELP,
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, OPTIONS);
    if (values.help) {
      println(ctx.stdout, HELP);
      return EXIT.ok;
    }
    if (positionals.length !== 1)
      throw usageError('jetty ab takes one runbook file: jetty ab RUNBOOK.md --variant ...');
    if (!values.variant?.length)
      throw usageError('name the variants to compare: --variant claude-code --variant codex:gpt-5.5');
    const { client, config } = connect(values, ctx);
    const runbook = await readRunbook(positionals[0]!, config.maxRunbookBytes);
    const exp = await client.createExperiment(experimentBody(runbook, values));
    println(values.json ? ctx.stderr : ctx.stdout, `experiment ${exp.id}: ${graderLine(exp)}`);
    const last = await watch(client, exp, ctx, config.maxEventBytes, values.json === true);
    if (values.json) println(ctx.stdout, JSON.stringify(last, null, 2));
    return (last.status === 'cancelled' ? EXIT.cancelled : EXIT.ok) as ExitCode;
  },
};

export function parseVariant(spec: string): Record<string, string> {
  const m = /^([a-z][a-z0-9-]*)(?::([^@]+))?(?:@([a-z][a-z0-9-]*))?$/.exec(spec);
  if (!m) throw usageError(`--variant takes AGENT, AGENT:MODEL or AGENT:MODEL@PROVIDER; got "${spec}"`);
  return {
    name: spec,
    agent: m[1]!,
    ...(m[2] ? { model: m[2] } : {}),
    ...(m[3] ? { model_provider: m[3] } : {}),
  };
}

function experimentBody(runbook: string, v: Values): Record<string, unknown> {
  const vars: Record<string, string> = {};
  for (const kv of v.var ?? []) {
    const eq = kv.indexOf('=');
    if (eq < 1) throw usageError(`--var takes NAME=VALUE; got "${kv}"`);
    vars[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const variants = (v.variant ?? []).map((s) => {
    const p = parseVariant(s);
    return v.provider && !p.model_provider ? { ...p, model_provider: v.provider } : p;
  });
  return {
    runbook,
    variants,
    repeats: intFlag('repeats', v.repeats, 1, 10_000) ?? 3,
    ...(Object.keys(vars).length ? { template_variables: vars } : {}),
    ...(v['judge-model'] ? { judge_model: v['judge-model'] } : {}),
    ...(v['judge-provider'] ? { judge_provider: v['judge-provider'] } : {}),
  };
}

async function readRunbook(file: string, max: number): Promise<string> {
  const st = await stat(file).catch(() => null);
  if (!st?.isFile()) throw usageError(`cannot read the runbook ${file}: no such file`);
  if (st.size > max) {
    throw usageError(
      `the runbook ${file} is ${formatBytes(st.size)}, over JETTY_CLI_MAX_RUNBOOK_BYTES (${formatBytes(max)})`,
    );
  }
  return readFile(file, 'utf8');
}

function graderLine(exp: ExperimentView): string {
  const g = exp.grader;
  const judge = g.judge_model ? `, judge ${g.judge_model} (${g.judge_provider})` : '';
  return `${exp.variants.length} variant(s) × ${exp.variants[0]?.runs ?? 0} run(s), graded ${g.kind ?? 'by nothing (the runbook declares no evaluation)'}${judge}`;
}

/**
 * Follows the progress stream until the experiment ends; a TTY redraws the table in place, else
 * each change is one plain line and the table is printed once at the end. Ctrl-C cancels the rest.
 */
async function watch(
  client: JettyClient,
  first: ExperimentView,
  ctx: CliContext,
  maxEventBytes: number,
  quiet: boolean,
): Promise<ExperimentView> {
  const tty = ctx.stdout.isTTY === true && !quiet;
  const abort = new AbortController();
  let cancelling = false;
  const onInt = () => {
    if (cancelling) return abort.abort();
    cancelling = true;
    println(ctx.stderr, 'cancelling the runs not yet ended (Ctrl-C again stops watching)');
    client
      .cancelExperiment(first.id)
      .catch((err) => println(ctx.stderr, `cancel failed: ${(err as Error).message}`));
  };
  ctx.signals.on('SIGINT', onInt);
  let last = first;
  let drawn = 0;
  const seen = new Map<string, string>();
  try {
    if (tty) drawn = redraw(ctx, table(last), 0);
    for await (const exp of client.experimentEvents(first.id, { signal: abort.signal, maxEventBytes })) {
      last = exp;
      if (tty) drawn = redraw(ctx, table(exp), drawn);
      else if (!quiet) plainLines(ctx, exp, seen);
    }
  } catch (err) {
    if ((err as Error).name !== 'AbortError') throw err;
  } finally {
    ctx.signals.off('SIGINT', onInt);
  }
  // The stream ends with the last state; read it once more in case the connection dropped early.
  if (last.status === 'running' && !abort.signal.aborted) last = await client.getExperiment(first.id);
  if (!tty && !quiet) println(ctx.stdout, table(last).join('\n'));
  if (!quiet) println(ctx.stdout, `experiment ${last.id}: ${last.status}`);
  return last;
}

function redraw(ctx: CliContext, lines: string[], previous: number): number {
  if (previous) ctx.stdout.write(`\x1b[${previous}A\x1b[J`);
  ctx.stdout.write(`${lines.join('\n')}\n`);
  return lines.length;
}

function plainLines(ctx: CliContext, exp: ExperimentView, seen: Map<string, string>): void {
  for (const v of exp.variants) {
    const line = `${v.name}: ${v.ended}/${v.runs} ended, ${v.passed} passed`;
    if (seen.get(v.name) !== line) println(ctx.stdout, line);
    seen.set(v.name, line);
  }
}

const COLUMNS = [
  'variant',
  'ended',
  'passed',
  'pass rate (95% CI)',
  'mean score',
  'median time',
  'mean cost',
  'tokens',
];

/** The table: one row per variant, columns padded to their widest cell. */
export function table(exp: ExperimentView): string[] {
  const rows = exp.variants.map((v) => [
    v.name,
    `${v.ended}/${v.runs}`,
    String(v.passed),
    v.pass_rate === null
      ? '—'
      : `${pct(v.pass_rate)}${v.pass_rate_ci ? ` [${pct(v.pass_rate_ci[0])}, ${pct(v.pass_rate_ci[1])}]` : ''}`,
    v.mean_score === null ? '—' : String(v.mean_score),
    v.median_duration_ms === null ? '—' : `${(v.median_duration_ms / 1000).toFixed(1)}s`,
    v.mean_cost_usd === null ? '—' : `$${v.mean_cost_usd.toFixed(4)}`,
    String(v.tokens),
  ]);
  const widths = COLUMNS.map((c, i) => Math.max(c.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [fmt(COLUMNS), fmt(widths.map((w) => '-'.repeat(w))), ...rows.map(fmt)];
}

function pct(x: number): string {
  return `${Math.round(x * 100)}%`;
}
