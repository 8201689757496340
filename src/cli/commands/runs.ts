import { evaluationSummary, formatCost, formatDuration } from '../../events/display.js';
import type { RunRecord } from '../client.js';
import {
  CONNECTION_HELP,
  CONNECTION_OPTIONS,
  type Command,
  connect,
  intFlag,
  parse,
  println,
} from '../command.js';
import { EXIT, usageError } from '../exit.js';

const STATUSES = ['pending', 'running', 'completed', 'failed', 'cancelled'];

const OPTIONS = {
  ...CONNECTION_OPTIONS,
  status: { type: 'string' },
  task: { type: 'string' },
  limit: { type: 'string', short: 'n' },
  cursor: { type: 'string' },
  json: { type: 'boolean' },
} as const;

const HELP = `usage: jetty runs [options]

Lists your collection's runs, newest first.

options:
      --status STATUS  only runs in this status: ${STATUSES.join(', ')}
      --task NAME      only runs of this task
  -n, --limit N        how many (1 to 100, default 20)
      --cursor C       the next page (the command prints the cursor when there is one)
      --json           the server's JSON page as it came
${CONNECTION_HELP}
  -h, --help           this help`;

export const runsCommand: Command = {
  name: 'runs',
  summary: 'list runs (filter by status, task)',
  help: HELP,
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, OPTIONS);
    if (values.help) {
      println(ctx.stdout, HELP);
      return EXIT.ok;
    }
    if (positionals.length) throw usageError(`jetty runs takes no arguments; got "${positionals.join(' ')}"`);
    if (values.status && !STATUSES.includes(values.status)) {
      throw usageError(`--status must be one of ${STATUSES.join(', ')}; got "${values.status}"`);
    }
    const { client } = connect(values, ctx);
    const page = await client.listRuns({
      limit: intFlag('limit', values.limit, 1, 100),
      cursor: values.cursor,
      status: values.status,
      task: values.task,
    });
    if (values.json) {
      println(ctx.stdout, JSON.stringify(page));
      return EXIT.ok;
    }
    for (const line of table(page.data)) println(ctx.stdout, line);
    if (page.next_cursor) println(ctx.stderr, `more: jetty runs --cursor ${page.next_cursor}`);
    return EXIT.ok;
  },
};

const HEAD = ['RUN', 'STATUS', 'AGENT', 'MODEL', 'CREATED', 'DURATION', 'COST', 'EVALUATION'];

function table(runs: RunRecord[]): string[] {
  if (!runs.length) return ['no runs'];
  const rows = runs.map((r) => [
    r.id,
    r.status,
    r.agent,
    r.model,
    r.created_at.replace('T', ' ').slice(0, 19),
    formatDuration(r.duration_ms),
    formatCost(r.usage.cost_usd),
    evaluationSummary(r.evaluation, 40),
  ]);
  const widths = HEAD.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [HEAD, ...rows].map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  );
}
