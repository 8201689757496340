import { CONNECTION_HELP, CONNECTION_OPTIONS, type Command, connect, parse, println } from '../command.js';
import { EXIT, usageError } from '../exit.js';

const HELP = `usage: jetty cancel RUN_ID

Cancels a run: its sandbox is stopped within seconds and its status becomes cancelled.

options:
${CONNECTION_HELP}
  -h, --help           this help`;

export const cancelCommand: Command = {
  name: 'cancel',
  summary: 'cancel a run',
  help: HELP,
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, CONNECTION_OPTIONS);
    if (values.help) {
      println(ctx.stdout, HELP);
      return EXIT.ok;
    }
    if (positionals.length !== 1) throw usageError('jetty cancel takes one run id: jetty cancel RUN_ID');
    const { client } = connect(values, ctx);
    const rec = await client.cancel(positionals[0]!);
    println(
      ctx.stdout,
      `run ${rec.id}: ${rec.status}${rec.status === 'cancelled' ? '' : ' (cancel requested)'}`,
    );
    return EXIT.ok;
  },
};
