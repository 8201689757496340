/**
 * Every runtime adapter against the shared contract, on its recorded CLI output.
 * Adding a runtime: record its fixtures under test/fixtures/<runtime>/ and add a block here.
 */
import { claudeCodeAdapter } from '../../src/runtimes/claude-code.js';
import { loadRecording, runConformance } from '../support/runtime-conformance.js';

const claudeFixture = (name: string) => new URL(`../fixtures/claude-code/${name}`, import.meta.url);

runConformance(claudeCodeAdapter, {
  success: loadRecording(claudeFixture('success-write.jsonl'), 0),
  toolUse: loadRecording(claudeFixture('success-bash.jsonl'), 0),
  providerError: { ...loadRecording(claudeFixture('provider-401.jsonl'), 1), httpStatus: 401 },
  crash: loadRecording(claudeFixture('crash-killed.jsonl'), 137),
  longLine: loadRecording(claudeFixture('long-line-read.jsonl'), 0),
});
