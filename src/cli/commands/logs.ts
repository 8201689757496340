import { CONNECTION_HELP, CONNECTION_OPTIONS, type Command, connect, parse, println } from '../command.js';
import { EXIT, usageError } from '../exit.js';
import { ProgressView } from '../progress.js';
import { watchRun } from '../watch.js';
import { exitCodeOfEvent } from './run.js';

const OPTIONS = {
  ...CONNECTION_OPTIONS,
  follow: { type: 'boolean', short: 'f' },
  after: { type: 'string' },
  json: { type: 'boolean' },
} as const;

const HELP = `usage: jetty logs RUN_ID [-f]

Shows a run's events as \`jetty run\` does. With -f it follows the run until it ends, and resumes
after a dropped connection where it left off (Last-Event-ID), so no event is missed or repeated.

options:
  -f, --follow         follow until the run ends; then exit as jetty run does (0 completed,
                       1 failed, 3 cancelled)
      --after ID       start after this event id
      --json           the raw events, one JSON object per line
${CONNECTION_HELP}
  -h, --help           this help`;

export const logsCommand: Command = {
  name: 'logs',
  summary: "show a run's events; -f follows it live, resuming after a dropped connection",
  help: HELP,
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, OPTIONS);
    if (values.help) {
      println(ctx.stdout, HELP);
      return EXIT.ok;
    }
    if (positionals.length !== 1) throw usageError('jetty logs takes one run id: jetty logs RUN_ID [-f]');
    const id = positionals[0]!;
    const { client, config } = connect(values, ctx);
    if (values.follow) {
      // Ctrl-C only stops following here: the run goes on (`jetty cancel` stops it).
      const stop = new AbortController();
      const { terminal } = await watchRun(client, config, id, ctx, {
        json: values.json === true,
        ...(values.after ? { after: values.after } : {}),
        signal: stop.signal,
      });
      return terminal ? exitCodeOfEvent(terminal.type) : EXIT.ok;
    }
    // A snapshot of what happened so far, from the trajectory (a finished run's comes from storage).
    const events = await client.trajectoryEvents(id);
    const after = values.after ? events.findIndex((e) => e.id === values.after) + 1 : 0;
    const view = values.json ? undefined : new ProgressView({ write: (s) => ctx.stdout.write(s) });
    for (const ev of events.slice(after)) {
      if (view) view.event(ev);
      else println(ctx.stdout, JSON.stringify(ev));
    }
    view?.close();
    return EXIT.ok;
  },
};
