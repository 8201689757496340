import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, startHarness } from '../support/harness.js';
import { missingShownLines, type ReadmeBlock, runnableBlocks } from '../support/readme-blocks.js';
import { sandboxesLeft } from '../support/sandboxes.js';

// Every README block marked `<!-- runnable -->` runs as a reader runs it: against a real server (API
// and worker, real Redis and Docker, the claude CLI in its image, the simulated model), in a fresh
// directory, with only what the README asks the reader to set: JETTY_URL and JETTY_API_KEY exported
// (as scripts/up.sh prints them), `jetty` on the PATH (`npm link`), and the clients the examples
// import installed (the repository's node_modules). Blocks never share a directory, so none can
// lean on another's files. Where the README shows output, its lines must appear.
const ROOT = path.resolve(import.meta.dirname, '../..');
const CLI = path.join(ROOT, 'dist/src/main/cli.js');
const README = path.join(ROOT, 'README.md');
const BLOCK_TIMEOUT_MS = 90_000;
// Set to a path to write each block's actual output there (to refresh the README's shown output).
const PRINT_TO = process.env.README_EXAMPLES_OUTPUT;

const docker = new Dockerode();
let h: Harness;
let binDir: string;
const blocks: ReadmeBlock[] = runnableBlocks(await readFile(README, 'utf8'));
const dirs: string[] = [];

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
  // The README's examples use the collection scripts/up.sh makes.
  h = await startHarness({ env: { JETTY_BOOTSTRAP_COLLECTION: 'demo' } });
  binDir = await mkdtemp(path.join(tmpdir(), 'readme-bin-'));
  // What `npm link` installs: a `jetty` command that runs the compiled CLI.
  await writeFile(path.join(binDir, 'jetty'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`, {
    mode: 0o755,
  });
  if (PRINT_TO) await writeFile(PRINT_TO, '');
}, 120_000);

afterEach(async () => {
  // Warm sandboxes no run has claimed stay with the pool (the harness checks they go at its stop).
  const left = await sandboxesLeft(docker, h.instance);
  for (const c of left) await docker.getContainer(c.Id).remove({ force: true });
  expect(left.map((c) => c.Names)).toEqual([]);
});

afterAll(async () => {
  await h?.stop();
  for (const d of [binDir, ...dirs]) if (d) await rm(d, { recursive: true, force: true });
});

const FILE: Record<ReadmeBlock['lang'], { name: string; argv: (f: string) => string[] }> = {
  sh: { name: 'example.sh', argv: (f) => ['bash', '-eo', 'pipefail', f] },
  js: { name: 'example.mjs', argv: (f) => [process.execPath, f] },
  python: { name: 'example.py', argv: (f) => ['python3', f] },
};

async function runBlock(block: ReadmeBlock): Promise<{ code: number; out: string; err: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'readme-example-'));
  dirs.push(dir);
  await symlink(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  await mkdir(path.join(dir, 'home'));
  const file = path.join(dir, FILE[block.lang].name);
  await writeFile(file, block.code);
  const [cmd, ...args] = FILE[block.lang].argv(file);
  const child = spawn(cmd!, args, {
    cwd: dir,
    env: {
      PATH: `${binDir}:${process.env.PATH}`,
      HOME: path.join(dir, 'home'),
      JETTY_URL: h.url,
      JETTY_API_KEY: h.key,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? -1)));
  return { code, out, err };
}

describe('the README examples, run as written', () => {
  it('has runnable examples to run', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(5);
  });

  for (const block of blocks) {
    const first = block.code.split('\n').find((l) => l.trim() !== '') ?? '';
    it(
      `README line ${block.line} (${block.lang}: ${first.slice(0, 50)})`,
      async () => {
        const { code, out, err } = await runBlock(block);
        if (PRINT_TO)
          await writeFile(PRINT_TO, `== line ${block.line}\n${out}\n-- stderr\n${err}\n`, { flag: 'a' });
        expect({ code, stderr: code === 0 ? '' : err }).toEqual({ code: 0, stderr: '' });
        if (block.shown !== undefined) expect(missingShownLines(block.shown, out)).toEqual([]);
      },
      BLOCK_TIMEOUT_MS,
    );
  }
});
