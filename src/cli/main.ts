import { ConfigError } from '../config/index.js';
import type { CliContext, Command } from './command.js';
import { abCommand } from './commands/ab.js';
import { ADMIN_GROUPS, adminCommand } from './commands/admin.js';
import { cancelCommand } from './commands/cancel.js';
import { logsCommand } from './commands/logs.js';
import { runCommand } from './commands/run.js';
import { runsCommand } from './commands/runs.js';
import { CliError, EXIT, EXIT_CODES_HELP } from './exit.js';

/** Every `jetty <command>`; a new command is one more entry. */
export const COMMANDS: Command[] = [
  runCommand,
  runsCommand,
  logsCommand,
  cancelCommand,
  abCommand,
  adminCommand,
];

export function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `usage: jetty <command> [options]     (jetty <command> --help for its options)

Runs runbooks on a runbook runtime server and watches them, over its HTTP API.

commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

The server and key come from --server/--key or JETTY_URL/JETTY_API_KEY.

${EXIT_CODES_HELP}`;
}

/** Runs one command line; returns the exit code (errors are printed here, once). */
export async function runCli(argv: string[], ctx: CliContext): Promise<number> {
  const [name, ...rest] = argv;
  try {
    if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
      const topic = name === 'help' ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
      ctx.stdout.write(`${topic ? topic.help : mainHelp()}\n`);
      return EXIT.ok;
    }
    // `npm run jetty -- collections create ...` predates `admin`: the old words still work.
    if (ADMIN_GROUPS.includes(name)) return await adminCommand.run(argv, ctx);
    const cmd = COMMANDS.find((c) => c.name === name);
    if (!cmd) throw new CliError(`unknown command "${name}"\n\n${mainHelp()}`, EXIT.usage);
    return await cmd.run(rest, ctx);
  } catch (err) {
    if (err instanceof CliError) {
      ctx.stderr.write(`jetty: ${err.message}\n`);
      if (err.exitCode === EXIT.usage && !err.message.includes('usage:')) {
        ctx.stderr.write(
          `(jetty ${COMMANDS.some((c) => c.name === name) ? `${name} ` : ''}--help shows the usage)\n`,
        );
      }
      return err.exitCode;
    }
    if (err instanceof ConfigError) {
      ctx.stderr.write(`jetty: ${err.message}\n`);
      return EXIT.usage;
    }
    ctx.stderr.write(`jetty: ${(err as Error).message}\n`);
    return 1;
  }
}
