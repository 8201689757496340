/**
 * What the simulated model does for a runbook without a `simulate` block: one shell command that
 * writes a short placeholder into every required output file, then a closing message naming them.
 */
import { posix } from 'node:path';
import type { SimStep } from './script.js';

export interface DefaultPolicyInput {
  requiredOutputs: readonly string[];
  workdir: string;
}

const TEXT_PLACEHOLDER = 'Placeholder written by the simulated model provider (dry run).';
const JSON_PLACEHOLDER = '{"placeholder": true, "note": "written by the simulated model provider (dry run)"}';

/** The default script, in the same step form a runbook's own script has (line 0: not from the runbook). */
export function defaultSteps(input: DefaultPolicyInput): SimStep[] {
  const files = uniqueFiles(input);
  if (files.length === 0) {
    return [
      {
        kind: 'say',
        text: 'Dry run with the simulated model provider: this runbook lists no required output files, so there was nothing to create.',
        line: 0,
      },
    ];
  }
  const noun = files.length === 1 ? 'file' : 'files';
  return [
    {
      kind: 'say',
      text: `Dry run with the simulated model provider: writing a placeholder into the ${files.length} required output ${noun}.`,
      line: 0,
    },
    { kind: 'run', command: placeholderCommand(files), line: 0 },
    { kind: 'say', text: `Done. Wrote placeholder ${noun}: ${files.join(', ')}.`, line: 0 },
  ];
}

/** Absolute, normalized, de-duplicated paths; relative ones are taken from the working directory. */
function uniqueFiles(input: DefaultPolicyInput): string[] {
  const seen = new Set<string>();
  for (const raw of input.requiredOutputs) {
    const trimmed = raw.trim();
    if (trimmed === '') continue;
    seen.add(posix.resolve(input.workdir, trimmed));
  }
  return [...seen];
}

/** One POSIX sh command: make the parent directories, then write each file. */
export function placeholderCommand(files: readonly string[]): string {
  const dirs = [...new Set(files.map((f) => posix.dirname(f)))];
  const writes = files.map((f) => `printf '%s\\n' ${shellQuote(placeholderFor(f))} > ${shellQuote(f)}`);
  return [`mkdir -p ${dirs.map(shellQuote).join(' ')}`, ...writes].join(' && ');
}

function placeholderFor(file: string): string {
  return /\.json$/i.test(file) ? JSON_PLACEHOLDER : TEXT_PLACEHOLDER;
}

/** Single-quotes a word for sh: nothing inside single quotes is special except the quote itself. */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}
