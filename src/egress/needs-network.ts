import { markdownLines } from '../runbook/markdown.js';

/**
 * The environment check's network part: which commands of a runbook fetch from the network
 * (installs, downloads, clones). Read from what a runbook runs, its fenced code and `inline code`
 * (Dependencies tables, setup steps), not its prose, where "do not pip install" is advice.
 */

const FETCHERS: ReadonlyArray<[string, RegExp]> = [
  ['pip install', /\bpip[0-9.]*\s+install\b(?![^\n]*--no-index)/],
  ['uv', /\buv\s+(pip\s+install|add|sync|run\s+--with|tool\s+install)\b|\buvx\s/],
  ['pipx install', /\bpipx\s+(install|run)\b/],
  ['npm install', /\bnpm\s+(install|i|ci|add)\b/],
  ['npx', /\bnpx\s+(-y\s+|--yes\s+)?[@a-z]/],
  ['yarn/pnpm', /\b(yarn|pnpm)\s+(add|install|dlx)\b/],
  ['curl', /\bcurl\b[^\n]*\bhttps?:\/\//],
  ['wget', /\bwget\b[^\n]*\bhttps?:\/\//],
  ['git clone', /\bgit\s+(clone|fetch|pull)\b/],
  ['apt-get install', /\bapt(-get)?\s+install\b/],
  ['playwright install', /\bplaywright\s+install\b/],
];

const INLINE_CODE = /`([^`\n]+)`/g;

/** The fetching commands the runbook calls, in FETCHERS' order, each named once. */
export function networkCommands(runbook: string): string[] {
  const code: string[] = [];
  for (const line of markdownLines(runbook)) {
    if (line.inFence) code.push(line.text);
    else for (const m of line.text.matchAll(INLINE_CODE)) code.push(m[1] ?? '');
  }
  const text = code.join('\n');
  return FETCHERS.filter(([, re]) => re.test(text)).map(([name]) => name);
}
