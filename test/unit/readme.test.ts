import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { listRuntimes } from '../../src/runtimes/registry.js';
import { withRuntimesTable } from '../../src/runtimes/table.js';

describe('the README', () => {
  it('has the runtimes table GET /v1/runtimes describes (run `npm run build && npm run readme` after changing a runtime)', async () => {
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
    expect(readme).toBe(withRuntimesTable(readme));
    for (const rt of listRuntimes())
      expect(readme).toContain(`| \`${rt.name}\` | \`${rt.cliPackage}\` ${rt.cliVersion} |`);
  });
});
