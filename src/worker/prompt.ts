/** What the agent is told: the runbook, the caller's instruction, and its deadline. */
export function composePrompt(opts: {
  runbook: string;
  instruction: string;
  timeoutSec: number;
  resultsDir: string;
}): string {
  const parts = [opts.runbook.trimEnd()];
  if (opts.instruction.trim()) parts.push(`---\n\n${opts.instruction.trim()}`);
  parts.push(
    `(You have ${formatDuration(opts.timeoutSec)} of wall-clock time for this run; after that the sandbox is stopped. ` +
      `Files you write under ${opts.resultsDir} are collected as the run's results.)`,
  );
  return `${parts.join('\n\n')}\n`;
}

function formatDuration(sec: number): string {
  if (sec < 120) return `${sec} seconds`;
  const min = Math.floor(sec / 60);
  return sec % 60 === 0 ? `${min} minutes` : `${min} minutes ${sec % 60} seconds`;
}
