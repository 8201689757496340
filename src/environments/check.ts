import type { RunWarning } from '../events/types.js';
import { missingCommands } from './commands.js';
import type { EnvironmentReport } from './probe.js';

/** What the environment check looks at of a run. */
export interface CheckedRun {
  environment: { snapshot: string | null; image: string };
  /** Commands the runbook calls (commandsOfRunbook). */
  commands: readonly string[];
}

/** How the run's environment is named to the user. */
export function environmentName(env: CheckedRun['environment']): string {
  return env.snapshot === null ? `the image ${env.image}` : `the ${env.snapshot} snapshot (${env.image})`;
}

/**
 * The environment check, before the agent starts: one warning listing the commands the runbook
 * calls that the environment lacks. (Further checks of the same kind, such as a runbook that
 * installs packages under a network policy of `none`, add their own warning here.)
 */
export function environmentWarnings(report: EnvironmentReport, run: CheckedRun): RunWarning[] {
  const missing = missingCommands(run.commands, new Set(report.commands));
  if (missing.length === 0) return [];
  const cut = report.commandsTruncated ? ' (its command listing was cut short, so some may be there)' : '';
  return [
    {
      code: 'environment_missing',
      message: `The runbook calls ${missing.join(', ')}, which ${environmentName(run.environment)} does not have${cut}. The agent may fail where it needs them: run it in an environment that has them (GET /v1/snapshots lists what each snapshot has, e.g. python312-uv for Python), or install them in a setup step.`,
    },
  ];
}
