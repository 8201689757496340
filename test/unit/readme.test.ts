import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI_VARIABLES } from '../../src/config/cli.js';
import { configVariableNames } from '../../src/config/index.js';
import { listRuntimes } from '../../src/runtimes/registry.js';
import { withRuntimesTable } from '../../src/runtimes/table.js';
import { collectErrorCodes } from '../support/error-codes.js';
import { linePattern, missingShownLines, runnableBlocks } from '../support/readme-blocks.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const read = (rel: string) => readFile(path.join(ROOT, rel), 'utf8');

/** The backticked names in the first cell of each table row under `## heading`s not in `skip`. */
function firstCellNames(markdown: string, skip: string[] = []): Set<string> {
  const names = new Set<string>();
  let heading = '';
  for (const line of markdown.split('\n')) {
    if (line.startsWith('## ')) heading = line.slice(3).trim();
    if (!line.startsWith('| ') || skip.includes(heading)) continue;
    const cell = line.split('|')[1] ?? '';
    for (const m of cell.matchAll(/`([^`]+)`/g)) names.add(m[1]!);
  }
  return names;
}

describe('the README', () => {
  it('has the runtimes table GET /v1/runtimes describes (run `npm run build && npm run readme` after changing a runtime)', async () => {
    const readme = await read('README.md');
    expect(readme).toBe(withRuntimesTable(readme));
    for (const rt of listRuntimes())
      expect(readme).toContain(`| \`${rt.name}\` | \`${rt.cliPackage}\` ${rt.cliVersion} |`);
  });

  it('stays a map: short enough to read top-down, with a table of contents', async () => {
    const readme = await read('README.md');
    expect(readme.split('\n').length).toBeLessThanOrEqual(450);
    const headings = [...readme.matchAll(/^## (.+)$/gm)].map((m) => m[1]!).filter((h) => h !== 'Contents');
    const anchor = (h: string) =>
      `(#${h
        .toLowerCase()
        .replace(/[^a-z0-9 -]/g, '')
        .replace(/ /g, '-')})`;
    for (const h of headings) expect(readme, `the contents link ${h}`).toContain(anchor(h));
  });

  it('marks runnable examples that the e2e test can run, each in a language it knows', async () => {
    const blocks = runnableBlocks(await read('README.md'));
    expect(blocks.map((b) => b.lang)).toEqual(expect.arrayContaining(['sh', 'js', 'python']));
    for (const b of blocks) expect(b.code.trim().length, `block at line ${b.line}`).toBeGreaterThan(0);
  });

  it('links only to files and headings that exist', async () => {
    // Pages other branches of this change set are writing; they exist once those are merged.
    const pending = new Set<string>();
    const docs = (await readdir(path.join(ROOT, 'docs'))).filter((f) => f.endsWith('.md'));
    const pages = ['README.md', ...docs.map((f) => `docs/${f}`)];
    const broken: string[] = [];
    for (const page of pages) {
      for (const m of (await read(page)).matchAll(/\]\(([^)#\s]*)(?:#([^)\s]*))?\)/g)) {
        const [, target = '', anchor] = m;
        if (/^[a-z]+:/.test(target)) continue;
        const rel = target ? path.relative(ROOT, path.resolve(ROOT, path.dirname(page), target)) : page;
        if (pending.has(rel)) continue;
        if (!existsSync(path.join(ROOT, rel))) broken.push(`${page} → ${target}`);
        else if (anchor && rel.endsWith('.md') && !headingAnchors(await read(rel)).has(anchor))
          broken.push(`${page} → ${target}#${anchor}`);
      }
    }
    expect(broken).toEqual([]);
  });
});

/** The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens. */
function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  let inFence = false;
  for (const line of markdown.split('\n')) {
    if (/^ {0,3}(```|~~~)/.test(line)) inFence = !inFence;
    const m = inFence ? null : /^#{1,6} (.+)$/.exec(line);
    if (m)
      anchors.add(
        m[1]!
          .trim()
          .toLowerCase()
          .replace(/[^\p{L}\p{N} _-]/gu, '')
          .replace(/ /g, '-'),
      );
  }
  return anchors;
}

describe('the README examples matcher', () => {
  it('takes ids, numbers and … as the parts that vary, and nothing else', () => {
    expect(
      linePattern('run 7f3b388a9f684781: completed in 1.2s').test('run 0123456789abcdef: completed in 16.7s'),
    ).toBe(true);
    expect(linePattern('run 7f3b388a9f684781: completed').test('run 0123456789abcdef: failed')).toBe(false);
    expect(linePattern('data: {…,"type":"run.queued"}').test('data: {"id":"x","type":"run.queued"}')).toBe(
      true,
    );
  });

  it('wants every shown line, in the order shown', () => {
    const shown = 'queued\n…\n✓ completed in 1.0s';
    expect(missingShownLines(shown, 'run x\nqueued\nstarted\n✓ completed in 3.4s\n')).toEqual([]);
    expect(missingShownLines(shown, '✓ completed in 3.4s\nqueued\n')).toEqual(['✓ completed in 1.0s']);
    expect(missingShownLines(shown, 'queued\n✗ failed\n')).toEqual(['✓ completed in 1.0s']);
  });

  it('finds no runnable block where the marker is not followed by code', () => {
    expect(() => runnableBlocks('<!-- runnable -->\nsome text\n')).toThrow(/not followed by a code block/);
    expect(() => runnableBlocks('<!-- runnable -->\n```yaml\na: 1\n```\n')).toThrow(/cannot run/);
    const [b] = runnableBlocks('<!-- runnable -->\n````sh\necho "```"\n````\n\n```text\n```\n```\n');
    expect(b).toMatchObject({ lang: 'sh', code: 'echo "```"\n', shown: '' });
    const [c] = runnableBlocks('<!-- runnable -->\n```bash\necho hi\n```\n\n```text\nhi\n```\n');
    expect(c).toMatchObject({ lang: 'sh', code: 'echo hi\n', shown: 'hi' });
  });
});

describe('docs/configuration.md', () => {
  it('has a row for every environment variable the server and the CLI read, and none they do not', async () => {
    const doc = await read('docs/configuration.md');
    const documented = firstCellNames(doc, ['Scripts and tools']);
    const read_ = [...configVariableNames(), ...CLI_VARIABLES];
    expect(read_.filter((v) => !documented.has(v))).toEqual([]);
    expect([...documented].filter((v) => !read_.includes(v))).toEqual([]);
  });
});

describe('docs/troubleshooting.md', () => {
  it('explains every error and warning code in src/, and no code src/ no longer has', async () => {
    const doc = await read('docs/troubleshooting.md');
    const documented = firstCellNames(doc, ['Where to look']);
    const codes = collectErrorCodes().map((c) => c.code);
    expect(codes.length).toBeGreaterThan(50);
    const missing = collectErrorCodes().filter((c) => !documented.has(c.code));
    expect(missing.map((c) => `${c.code} (${c.file})`)).toEqual([]);
    // A code built at run time rather than written out: the passthrough's provider status.
    const built = new Set(['provider_http_<status>']);
    expect([...documented].filter((c) => !codes.includes(c) && !built.has(c))).toEqual([]);
  }, 120_000);
});
