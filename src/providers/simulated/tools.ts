/**
 * Protocol-neutral help for reading a request: which offered tool runs shell commands, and what a
 * structured-output side call should get back.
 */

import { isPlainObject } from '../../json.js';

/** A tool as the client offered it: its name and the JSON schema of its input. */
export interface OfferedTool {
  name: string;
  schema: unknown;
}

export interface ShellTool {
  name: string;
  /** The tool input that runs `command`. */
  input(command: string): Record<string, unknown>;
}

/**
 * Shell tools of the CLIs we run, in order of preference: claude `Bash`, opencode `bash`, gemini
 * `run_shell_command`, codex `exec_command`/`shell`, hermes `terminal`.
 */
const SHELL_TOOL_NAMES = ['Bash', 'bash', 'run_shell_command', 'exec_command', 'shell', 'terminal'];

export function pickShellTool(tools: readonly OfferedTool[]): ShellTool | null {
  for (const name of SHELL_TOOL_NAMES) {
    const tool = tools.find((t) => t.name === name);
    if (tool !== undefined) return shellToolFor(tool);
  }
  return null;
}

function shellToolFor(tool: OfferedTool): ShellTool {
  const props = schemaProperties(tool.schema);
  const required = schemaRequired(tool.schema);
  // Most shell tools take `command`; codex's exec_command takes `cmd`, its older `shell` an argv array.
  const key = 'command' in props || !('cmd' in props) ? 'command' : 'cmd';
  const wantsArgv = isPlainObject(props[key]) && props[key].type === 'array';
  return {
    name: tool.name,
    input(command) {
      const input: Record<string, unknown> = { [key]: wantsArgv ? ['bash', '-lc', command] : command };
      if (required.includes('description')) input.description = 'Run a scripted step';
      return input;
    },
  };
}

function schemaProperties(schema: unknown): Record<string, unknown> {
  return isPlainObject(schema) && isPlainObject(schema.properties) ? schema.properties : {};
}

function schemaRequired(schema: unknown): string[] {
  if (!isPlainObject(schema) || !Array.isArray(schema.required)) return [];
  return schema.required.filter((r): r is string => typeof r === 'string');
}

/**
 * A small value that satisfies a JSON schema: side calls such as claude's session-title request ask
 * for JSON of a given shape, and a client that cannot parse the answer logs an error or falls back.
 */
export function sampleFromSchema(schema: unknown, depth = 0): unknown {
  if (!isPlainObject(schema) || depth > 8) return null;
  if ('const' in schema) return schema.const;
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  for (const union of ['anyOf', 'oneOf'] as const) {
    const options = schema[union];
    if (Array.isArray(options) && options.length > 0) return sampleFromSchema(options[0], depth + 1);
  }
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
  switch (type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      for (const [name, sub] of Object.entries(schemaProperties(schema))) {
        out[name] = sampleFromSchema(sub, depth + 1);
      }
      return out;
    }
    case 'array': {
      const min = typeof schema.minItems === 'number' ? schema.minItems : 0;
      return Array.from({ length: Math.min(min, 8) }, () => sampleFromSchema(schema.items, depth + 1));
    }
    case 'integer':
    case 'number': {
      // At least 1: a router that reads a score treats 0 as "no answer".
      const min = typeof schema.minimum === 'number' ? schema.minimum : 1;
      const max = typeof schema.maximum === 'number' ? schema.maximum : Number.POSITIVE_INFINITY;
      return Math.min(Math.max(min, 1), max);
    }
    case 'boolean':
      return true;
    case 'null':
      return null;
    default:
      return 'Simulated run';
  }
}
