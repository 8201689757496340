/**
 * The runtimes this server can run, by name. Adding a runtime: its adapter module, one import and
 * one entry in ADAPTERS below, its image under docker/runtimes/<name>/, and its recorded fixtures
 * under test/fixtures/<name>/ (the conformance and end-to-end suites iterate over this list).
 */
import type { AgentName } from '../events/types.js';
import { claudeCodeAdapter } from './claude-code.js';
import { codexAdapter } from './codex.js';
import { geminiCliAdapter } from './gemini-cli.js';
import { hermesAdapter } from './hermes.js';
import { opencodeAdapter } from './opencode.js';
import type { RuntimeAdapter } from './types.js';

const ADAPTERS: readonly RuntimeAdapter[] = [
  claudeCodeAdapter,
  codexAdapter,
  geminiCliAdapter,
  hermesAdapter,
  opencodeAdapter,
];

const RUNTIMES: ReadonlyMap<AgentName, RuntimeAdapter> = new Map(ADAPTERS.map((a) => [a.name, a]));

export function getRuntime(name: AgentName): RuntimeAdapter | undefined {
  return RUNTIMES.get(name);
}

export function listRuntimes(): RuntimeAdapter[] {
  return [...RUNTIMES.values()];
}
