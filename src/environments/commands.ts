/**
 * Which commands a runbook calls, read from its text: the shell code blocks, the Python ones
 * (they need `python3`), and the Dependencies section. Only commands of a known vocabulary are
 * named: a runbook's shell also runs its own scripts, functions and tools it installs itself, and
 * a check that names those would cry wolf. The environment check compares the result with what
 * the run's environment has (src/environments/check.ts).
 */

/** Tools runbooks call that an environment may or may not have. */
export const KNOWN_COMMANDS: ReadonlySet<string> = new Set([
  'python',
  'python3',
  'pip',
  'pip3',
  'uv',
  'uvx',
  'node',
  'npm',
  'npx',
  'yarn',
  'pnpm',
  'bun',
  'deno',
  'playwright',
  'chromium',
  'chromium-browser',
  'google-chrome',
  'jq',
  'yq',
  'curl',
  'wget',
  'git',
  'unzip',
  'zip',
  'make',
  'gcc',
  'g++',
  'cmake',
  'ffmpeg',
  'convert',
  'magick',
  'pdftotext',
  'pdftoppm',
  'pdfinfo',
  'libreoffice',
  'soffice',
  'pandoc',
  'tesseract',
  'sqlite3',
  'duckdb',
  'psql',
  'java',
  'go',
  'cargo',
  'rustc',
  'ruby',
  'perl',
  'Rscript',
  'gh',
  'aws',
  'gcloud',
  'rg',
]);

/** At most this many bytes of a runbook are read for commands (a runbook is bounded before this). */
const MAX_SCAN_BYTES = 1024 * 1024;

const SHELL_LANGS = new Set(['', 'bash', 'sh', 'shell', 'zsh', 'console', 'terminal']);
const PYTHON_LANGS = new Set(['python', 'python3', 'py']);

interface CodeBlock {
  lang: string;
  body: string;
}

/** The runbook's fenced code blocks (``` or ~~~), with their info string's first word. */
export function codeBlocks(markdown: string): CodeBlock[] {
  const blocks: CodeBlock[] = [];
  const lines = markdown.slice(0, MAX_SCAN_BYTES).split('\n');
  let open: { fence: string; lang: string; body: string[] } | null = null;
  for (const line of lines) {
    if (open) {
      if (line.trim().startsWith(open.fence) && line.trim().replace(/[`~]/g, '') === '') {
        blocks.push({ lang: open.lang, body: open.body.join('\n') });
        open = null;
      } else open.body.push(line);
      continue;
    }
    const m = /^\s{0,3}(`{3,}|~{3,})\s*([^\s`]*)/.exec(line);
    if (m) open = { fence: m[1]!, lang: m[2]!.toLowerCase(), body: [] };
  }
  return blocks;
}

/** The command words of a shell script: the first word of every simple command. */
export function shellCommandWords(script: string): string[] {
  const words: string[] = [];
  // Line continuations join; comments go; then split at every command separator.
  const text = script.replace(/\\\n/g, ' ').replace(/(^|\s)#.*$/gm, '$1');
  for (const part of text.split(/&&|\|\||[;|&\n(){}`]|\$\(/)) {
    const tokens = part.trim().split(/\s+/);
    let i = 0;
    // Leading assignments (FOO=bar cmd), `sudo`, `time`, `exec`, `env`, a prompt sign.
    while (
      i < tokens.length &&
      /^(\$|[A-Za-z_][A-Za-z0-9_]*=.*|sudo|time|exec|env|nohup|then|do|else)$/.test(tokens[i]!)
    )
      i++;
    const word = tokens[i];
    if (word) words.push(word);
  }
  return words;
}

/** The Dependencies section's text (table rows and bullets), up to the next heading of its level or above. */
function dependenciesSection(markdown: string): string {
  const lines = markdown.slice(0, MAX_SCAN_BYTES).split('\n');
  const start = lines.findIndex((l) => /^#{1,6}\s+(dependencies|requirements|prerequisites)\b/i.test(l));
  if (start < 0) return '';
  const level = /^#+/.exec(lines[start]!)![0].length;
  const out: string[] = [];
  for (const line of lines.slice(start + 1)) {
    const h = /^(#+)\s/.exec(line);
    if (h && h[1]!.length <= level) break;
    out.push(line);
  }
  return out.join('\n');
}

/**
 * The known commands a runbook calls, sorted. `python3` stands for any Python code block; a
 * Dependencies entry names a command when one of its words is a known command ("Python 3.12"
 * counts as python3, "Playwright (chromium)" as playwright and chromium).
 */
export function commandsOfRunbook(markdown: string): string[] {
  const found = new Set<string>();
  for (const block of codeBlocks(markdown)) {
    if (PYTHON_LANGS.has(block.lang)) found.add('python3');
    if (!SHELL_LANGS.has(block.lang)) continue;
    for (const word of shellCommandWords(block.body)) {
      const name = word.replace(/^.*\//, '');
      if (KNOWN_COMMANDS.has(name)) found.add(name);
    }
  }
  for (const word of dependenciesSection(markdown).split(/[^A-Za-z0-9_+.-]+/)) {
    const w = word.toLowerCase().replace(/\.+$/, '');
    if (w === 'python') found.add('python3');
    else if (KNOWN_COMMANDS.has(w)) found.add(w);
  }
  return [...found].sort();
}

/** Of the commands a runbook calls, those an environment lacks (`python` is not `python3`). */
export function missingCommands(wanted: readonly string[], have: ReadonlySet<string>): string[] {
  return wanted.filter((c) => !have.has(c));
}
