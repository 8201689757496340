import { readFile, writeFile } from 'node:fs/promises';
import { withRuntimesTable } from '../runtimes/table.js';

/** `npm run readme`: rewrites the generated parts of README.md (the runtimes table). */
const file = process.argv[2] ?? 'README.md';
await writeFile(file, withRuntimesTable(await readFile(file, 'utf8')));
process.stdout.write(`updated ${file}\n`);
