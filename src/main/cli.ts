#!/usr/bin/env node
/**
 * The `jetty` command (package.json "bin"; `npx jetty` here, `jetty` after `npm i -g`, and
 * `npm run jetty -- ...`). The commands live in src/cli; docs/cli.md describes them.
 */
import { runCli } from '../cli/main.js';

runCli(process.argv.slice(2), {
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  cwd: process.cwd(),
  signals: process,
}).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`jetty: ${(err as Error).message}\n`);
    process.exitCode = 1;
  },
);
