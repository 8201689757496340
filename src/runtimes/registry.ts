/** The runtimes this server can run, by name. Adding a runtime means adding its adapter here. */
import type { AgentName } from '../events/types.js';
import { claudeCodeAdapter } from './claude-code.js';
import type { RuntimeAdapter } from './types.js';

const RUNTIMES: ReadonlyMap<AgentName, RuntimeAdapter> = new Map([
  [claudeCodeAdapter.name, claudeCodeAdapter],
]);

export function getRuntime(name: AgentName): RuntimeAdapter | undefined {
  return RUNTIMES.get(name);
}

export function listRuntimes(): RuntimeAdapter[] {
  return [...RUNTIMES.values()];
}
