import { writeFile } from 'node:fs/promises';
import { generateOpenApi } from '../http/openapi.js';

/** `npm run openapi`: writes openapi/openapi.json from the route schemas. */
const out = process.argv[2] ?? 'openapi/openapi.json';
await writeFile(out, await generateOpenApi());
process.stdout.write(`wrote ${out}\n`);
