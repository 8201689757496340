/**
 * Every registered runtime adapter against the shared contract, on its recorded CLI output.
 * A runtime's recordings live in test/fixtures/<runtime>/, named by its conformance.json:
 *   { "success": {"file", "exitCode"}, "toolUse": …, "providerError": {…, "httpStatus"}, "crash": …, "longLine": … }
 * A registered runtime without them fails here: no adapter ships unchecked.
 */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { listRuntimes } from '../../src/runtimes/registry.js';
import { type ConformanceFixtures, loadRecording, runConformance } from '../support/runtime-conformance.js';

interface Entry {
  file: string;
  exitCode: number | null;
  httpStatus?: number;
}

for (const adapter of listRuntimes()) {
  const dir = new URL(`../fixtures/${adapter.name}/`, import.meta.url);
  const manifest = new URL('conformance.json', dir);
  if (!existsSync(manifest)) {
    describe(`${adapter.name} conformance`, () => {
      it('has recorded fixtures', () => {
        expect.fail(`test/fixtures/${adapter.name}/conformance.json is missing`);
      });
    });
    continue;
  }
  const m = JSON.parse(readFileSync(manifest, 'utf8')) as Record<keyof ConformanceFixtures, Entry>;
  const load = (e: Entry) => loadRecording(new URL(e.file, dir), e.exitCode);
  runConformance(adapter, {
    success: load(m.success),
    toolUse: load(m.toolUse),
    providerError: { ...load(m.providerError), httpStatus: m.providerError.httpStatus ?? 0 },
    crash: load(m.crash),
    longLine: load(m.longLine),
  });
}
