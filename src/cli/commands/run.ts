import { randomUUID } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { CliConfig } from '../../config/cli.js';
import { evaluationSummary, formatBytes } from '../../events/display.js';
import { downloadArtifacts } from '../artifacts.js';
import type { JettyClient, RunRecord } from '../client.js';
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
import { CliError, EXIT, EXIT_CODES_HELP, type ExitCode, usageError } from '../exit.js';
import { InterruptHandler, type InterruptOutcome } from '../interrupt.js';
import type { ProgressView } from '../progress.js';
import { watchRun } from '../watch.js';

const OPTIONS = {
  ...CONNECTION_OPTIONS,
  agent: { type: 'string', short: 'a' },
  model: { type: 'string', short: 'm' },
  provider: { type: 'string', short: 'p' },
  var: { type: 'string', multiple: true },
  file: { type: 'string', short: 'f', multiple: true },
  snapshot: { type: 'string' },
  task: { type: 'string' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
  'no-download': { type: 'boolean' },
} as const;

const HELP = `usage: jetty run RUNBOOK.md [options]

Runs a runbook on the server and shows it live: the agent's words, one line per tool call, and a
status line (elapsed, tokens, cost). When it ends, its artifacts are saved in ./results/<run id>/
and its evaluation (if the server made one) is printed.

options:
  -a, --agent NAME       claude-code, codex, gemini-cli, opencode or hermes (default: the runbook's)
  -m, --model SLUG       the model (default: the runbook's, else the server's)
  -p, --provider NAME    the model provider, e.g. anthropic, openrouter, simulated
      --var NAME=VALUE   a template variable for {{NAME}}; repeat for more
  -f, --file PATH        a file for the agent's /app/assets (a zip is unpacked); repeat for more
      --snapshot NAME    the environment, e.g. python312-uv
      --task NAME        the task the run is filed under
      --timeout SECONDS  the run's deadline (the server caps it)
      --json             print the raw events, one JSON object per line, instead of progress
      --no-download      leave the artifacts on the server
${CONNECTION_HELP}
  -h, --help             this help

Ctrl-C asks "cancel the run? [y/N]" when stdin is a terminal; when it is not (a script, CI), it
cancels the run without asking. A second Ctrl-C after cancelling stops waiting.

${EXIT_CODES_HELP}`;

type RunValues = ReturnType<typeof parse<typeof OPTIONS>>['values'];

export const runCommand: Command = {
  name: 'run',
  summary: 'run a runbook file and watch it live',
  help: HELP,
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, OPTIONS);
    if (values.help) {
      println(ctx.stdout, HELP);
      return EXIT.ok;
    }
    if (positionals.length !== 1) throw usageError('jetty run takes one runbook file: jetty run RUNBOOK.md');
    const { client, config } = connect(values, ctx);
    const runbook = await readRunbook(path.resolve(ctx.cwd, positionals[0]!), config.maxRunbookBytes);
    const files = (values.file ?? []).map((f) => path.resolve(ctx.cwd, f));
    await checkFiles(files);
    const body = requestBody(
      runbook,
      values,
      files.length ? await uploadFiles(client, files, ctx, values) : [],
    );
    const run = await client.submitRun(body, randomUUID()).catch((err: unknown) => {
      throw withCliHint(err);
    });
    println(values.json ? ctx.stderr : ctx.stdout, `run ${run.id} (${client.baseUrl}/ui/#/runs/${run.id})`);
    const ended = await followWithInterrupt(client, config, run.id, ctx, values.json === true);
    if (ended === 'detached') return EXIT.cancelled;
    return finish(client, config, run.id, ctx, values);
  },
};

/** The server names request fields; say which flag sets them. */
function withCliHint(err: unknown): unknown {
  if (!(err instanceof CliError)) return err;
  const hints: [RegExp, string][] = [
    [/template_variables/, '--var NAME=VALUE sets a template variable'],
    [/model_provider/, '--provider NAME sets the provider'],
    [/file_paths/, '--file PATH uploads a file for the run'],
    [/jetty\.agent\b/, '--agent NAME sets the agent'],
  ];
  const hint = hints.find(([re]) => re.test(err.message));
  return hint ? new CliError(`${err.message}\n(with jetty run: ${hint[1]})`, err.exitCode, err.status) : err;
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

async function checkFiles(files: string[]): Promise<void> {
  for (const f of files) {
    const st = await stat(f).catch(() => null);
    if (!st?.isFile()) throw usageError(`--file ${f}: no such file`);
  }
}

async function uploadFiles(client: JettyClient, files: string[], ctx: CliContext, v: RunValues) {
  const keys = await client.upload(files);
  println(v.json ? ctx.stderr : ctx.stdout, `uploaded ${files.length} file(s) as ${keys.length} asset(s)`);
  return keys;
}

function templateVariables(vars: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of vars) {
    const eq = v.indexOf('=');
    if (eq < 1) throw usageError(`--var takes NAME=VALUE; got "${v}"`);
    out[v.slice(0, eq)] = v.slice(eq + 1);
  }
  return out;
}

/** The chat request that runs it: timeout_hint 0 answers at once with the run id; events follow. */
export function requestBody(runbook: string, v: RunValues, filePaths: string[]): Record<string, unknown> {
  const timeout = intFlag('timeout', v.timeout, 1, 7 * 24 * 3600);
  const vars = templateVariables(v.var ?? []);
  const jetty: Record<string, unknown> = { runbook: true, timeout_hint: 0 };
  if (v.agent) jetty.agent = v.agent;
  if (v.provider) jetty.model_provider = v.provider;
  if (v.snapshot) jetty.snapshot = v.snapshot;
  if (v.task) jetty.task = v.task;
  if (timeout !== undefined) jetty.timeout_sec = timeout;
  if (Object.keys(vars).length) jetty.template_variables = vars;
  if (filePaths.length) jetty.file_paths = filePaths;
  return {
    ...(v.model ? { model: v.model } : {}),
    stream: false,
    messages: [
      { role: 'system', content: runbook },
      { role: 'user', content: 'Execute the runbook.' },
    ],
    jetty,
  };
}

/** Watches until the run ends; Ctrl-C may cancel it (see InterruptHandler) or stop the watching. */
async function followWithInterrupt(
  client: JettyClient,
  config: CliConfig,
  id: string,
  ctx: CliContext,
  json: boolean,
): Promise<'ended' | 'detached'> {
  const stop = new AbortController();
  let detached = false;
  let cancelFailure: CliError | undefined;
  const act = (o: InterruptOutcome) => {
    if (o === 'detach') {
      detached = true;
      stop.abort();
    } else if (o === 'cancel') {
      println(ctx.stderr, `cancelling run ${id}…`);
      client.cancel(id).catch((err: CliError) => {
        cancelFailure = err;
        stop.abort();
      });
    }
  };
  let view: ProgressView | undefined;
  const interrupts = new InterruptHandler(ctx, id, act, (paused) => view?.pause(paused));
  interrupts.install();
  try {
    await watchRun(client, config, id, ctx, { json, signal: stop.signal, onView: (v) => (view = v) });
  } finally {
    interrupts.remove();
  }
  if (cancelFailure) throw cancelFailure;
  if (detached)
    println(ctx.stderr, `stopped waiting; run ${id} was asked to cancel (jetty logs ${id} -f follows it)`);
  return detached ? 'detached' : 'ended';
}

/** After the terminal event: the record, its artifacts on disk, its evaluation, the exit code. */
async function finish(
  client: JettyClient,
  config: CliConfig,
  id: string,
  ctx: CliContext,
  v: RunValues,
): Promise<ExitCode> {
  const rec = await client.getRun(id);
  const say = (line: string) => println(v.json ? ctx.stderr : ctx.stdout, line);
  if (rec.missing_outputs?.length) say(`missing outputs: ${rec.missing_outputs.join(', ')}`);
  if (!v['no-download'] && rec.artifacts.length) {
    const dir = path.join(ctx.cwd, 'results', rec.id);
    const got = await downloadArtifacts(client, rec, dir, config.maxDownloadBytes);
    if (got.saved.length)
      say(`saved ${got.saved.length} artifact(s) in ${path.relative(ctx.cwd, dir) || '.'}/`);
    for (const s of got.skipped) println(ctx.stderr, `not saved: ${s.path}: ${s.reason}`);
  }
  if (rec.evaluation !== undefined && rec.evaluation !== null)
    say(`evaluation: ${evaluationSummary(rec.evaluation)}`);
  return exitCodeOf(rec);
}

/** The exit code for a terminal event type (run.completed, run.failed, run.cancelled). */
export function exitCodeOfEvent(type: string): ExitCode {
  return type === 'run.completed' ? EXIT.ok : type === 'run.cancelled' ? EXIT.cancelled : EXIT.runFailed;
}

export function exitCodeOf(rec: Pick<RunRecord, 'id' | 'status'>): ExitCode {
  if (rec.status === 'completed') return EXIT.ok;
  if (rec.status === 'cancelled') return EXIT.cancelled;
  if (rec.status === 'failed') return EXIT.runFailed;
  // The stream ended without a terminal status (should not happen): say so rather than claim success.
  throw new CliError(`run ${rec.id} is still ${rec.status}`, EXIT.unreachable);
}
