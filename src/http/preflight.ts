import { badRequest } from '../errors.js';
import type { AgentName } from '../events/types.js';
import { checkModelSlug, openRouterFormOf } from '../providers/model-slugs.js';
import { validateSimulateScript } from '../providers/simulated/index.js';
import { keyEnvOf } from '../providers/upstreams.js';
import type { NewRun } from '../queue/run-service.js';
import { resolveRunbook } from '../runbook/resolve.js';
import { getRuntime } from '../runtimes/registry.js';
import type { ProviderName, RuntimeAdapter } from '../runtimes/types.js';
import type { AppDeps } from './deps.js';
import type { ChatRequest } from './schemas.js';

/** Each runtime's provider when nothing names one and no routing key applies (Jetty's legacy rule). */
const LEGACY_PROVIDER: Record<AgentName, ProviderName> = {
  'claude-code': 'anthropic',
  codex: 'openai',
  'gemini-cli': 'google',
  opencode: 'openrouter',
  hermes: 'anthropic',
};

export interface PlannedRun {
  job: NewRun;
  collection: string | null;
  task: string | null;
  stream: boolean;
  timeoutHintSec: number;
  runtime: RuntimeAdapter;
}

function textOf(content: ChatRequest['messages'][number]['content']): string {
  if (content === null) return '';
  if (typeof content === 'string') return content;
  return content
    .filter((p) => p.type === 'text' && typeof p.text === 'string')
    .map((p) => p.text)
    .join('\n');
}

/**
 * Turns a chat completions request into a run, or rejects it with the field and the fix. Nothing
 * that would fail in the first seconds of a run gets past this.
 */
export function planRun(body: ChatRequest, deps: AppDeps): PlannedRun {
  const jetty = body.jetty;
  if (!jetty) throw new Error('planRun needs a jetty block; a request without one is a passthrough call');
  if (jetty.runbook !== true) {
    throw badRequest('Set `jetty.runbook` to true to run the system message as a runbook.', 'jetty.runbook');
  }
  const sysIndex = body.messages.findIndex((m) => m.role === 'system' || m.role === 'developer');
  if (sysIndex < 0) {
    throw badRequest(
      'No system message: with `jetty.runbook: true` the runbook goes in a message with role "system".',
      'messages',
    );
  }
  const runbookText = textOf(body.messages[sysIndex]!.content);
  if (!runbookText.trim()) {
    throw badRequest(
      'The system message is empty: it must hold the runbook (markdown with optional YAML frontmatter).',
      `messages[${sysIndex}].content`,
    );
  }
  const webhook = webhookOf(jetty);
  if (jetty.file_paths && jetty.file_paths.length > 0) {
    throw badRequest(
      '`jetty.file_paths` is not served by this server yet: files cannot be mounted into the sandbox. Remove it, or inline small inputs in the runbook.',
      'jetty.file_paths',
    );
  }

  const resolved = resolveRunbook({
    runbookText,
    systemMessageIndex: sysIndex,
    requestModel: body.model,
    jetty,
    defaults: {
      agent: deps.defaults.agent,
      provider: undefined,
      model: undefined,
      timeoutSec: deps.defaults.timeoutSec,
      maxTimeoutSec: deps.defaults.maxTimeoutSec,
    },
  });

  const runtime = getRuntime(resolved.agent);
  if (!runtime) {
    throw badRequest(
      `The runtime "${resolved.agent}" is not available on this server yet. GET /v1/runtimes lists the ones that are.`,
      resolved.sources.agent.param ?? 'jetty.agent',
      'runtime_unavailable',
    );
  }

  const provider = resolved.provider ?? chooseProvider(runtime, deps);
  const providerParam = resolved.sources.provider.param ?? 'jetty.model_provider';
  if (!runtime.providers.includes(provider)) {
    throw badRequest(
      `The runtime ${runtime.name} cannot use the provider "${provider}". It runs with: ${runtime.providers.join(', ')}.`,
      providerParam,
      'provider_unsupported',
    );
  }
  if (provider === 'simulated') {
    if (!deps.providerAvailable('simulated')) {
      throw badRequest(
        'The simulated provider is switched off on this server.',
        providerParam,
        'provider_unavailable',
      );
    }
    const script = validateSimulateScript(resolved.renderedRunbook);
    if (!script.ok) {
      throw badRequest(script.message, `messages[${sysIndex}].content`, 'invalid_simulate_script');
    }
  } else if (!deps.providerAvailable(provider)) {
    throw badRequest(
      `No key for the provider "${provider}": the server needs ${keyEnvOf(provider)} set. Or run against the built-in simulated provider with "model_provider": "simulated".`,
      providerParam,
      'provider_key_missing',
    );
  }

  // With no model named, the runtime's default, in the form the provider takes.
  const model =
    resolved.model ??
    (provider === 'openrouter'
      ? (openRouterFormOf(runtime.defaultModel) ?? runtime.defaultModel)
      : runtime.defaultModel);
  const slug = checkModelSlug(model, provider, runtime.name);
  if (!slug.ok) {
    const hint =
      resolved.model === undefined
        ? ' No model was named: set `model` in the request or the frontmatter.'
        : '';
    throw badRequest(slug.message + hint, resolved.sources.model.param ?? 'model', 'model_slug_invalid');
  }

  const max = deps.defaults.sandbox;
  const cpus = Math.min(jetty.cpus ?? max.cpus, max.cpus);
  if (jetty.network_enabled && !max.allowNetwork) {
    throw badRequest(
      'This server does not give sandboxes network access (SANDBOX_ALLOW_NETWORK is off); the agent reaches its model through the gateway anyway. Remove network_enabled.',
      'jetty.network_enabled',
    );
  }
  const mcpServers = jetty.mcp_servers ?? [];
  if (mcpServers.length > 0 && !runtime.capabilities.mcp_servers) {
    throw badRequest(
      `The runtime ${runtime.name} cannot use MCP servers; remove jetty.mcp_servers or run on a runtime that can (GET /v1/runtimes lists capabilities).`,
      'jetty.mcp_servers',
      'mcp_unsupported',
    );
  }
  const unspoken =
    runtime.mcpTransports && mcpServers.find((m) => !runtime.mcpTransports!.includes(m.transport));
  if (unspoken) {
    throw badRequest(
      `The runtime ${runtime.name} does not speak the ${unspoken.transport} MCP transport of "${unspoken.name}"; it takes ${runtime.mcpTransports!.join(' and ')} servers.`,
      'jetty.mcp_servers',
      'mcp_unsupported',
    );
  }
  const remote = mcpServers.find((m) => m.transport !== 'stdio');
  if (remote && !jetty.network_enabled) {
    throw badRequest(
      `The MCP server "${remote.name}" is remote (${remote.transport}), but the sandbox has no network. Set jetty.network_enabled (where the server allows it) or run the server inside the sandbox ({command, args}).`,
      'jetty.mcp_servers',
      'mcp_needs_network',
    );
  }
  const instruction = body.messages
    .filter((_, i) => i !== sysIndex)
    .filter((m) => m.role === 'user')
    .map((m) => textOf(m.content))
    .join('\n\n');

  return {
    job: {
      agent: resolved.agent,
      model: slug.model,
      provider,
      runbook: resolved.renderedRunbook,
      instruction,
      resultsDir: resolved.resultsDir,
      requiredOutputs: resolved.requiredOutputs,
      timeoutSec: resolved.timeoutSec,
      limits: { cpus, memoryBytes: max.memoryBytes, pids: max.pids },
      network: jetty.network_enabled ? 'bridge' : 'none',
      mcpServers,
      webhook,
    },
    collection: jetty.collection ?? null,
    task: jetty.task ?? null,
    stream: body.stream === true,
    timeoutHintSec: jetty.timeout_hint ?? deps.defaults.timeoutHintSec,
    runtime,
  };
}

/** The webhook to call when the run ends; the schema has checked each field's form already. */
function webhookOf(jetty: NonNullable<ChatRequest['jetty']>): NewRun['webhook'] {
  const url = jetty.webhook_url;
  if (url === undefined) {
    if (jetty.webhook_secret !== undefined) {
      throw badRequest(
        '`jetty.webhook_secret` signs the webhook, but no `jetty.webhook_url` says where to send it. Add the URL or drop the secret.',
        'jetty.webhook_secret',
      );
    }
    return undefined;
  }
  const parsed = new URL(url);
  if (parsed.username || parsed.password) {
    throw badRequest(
      '`jetty.webhook_url` must not carry a user name or password: authenticate the call with `jetty.webhook_secret`, whose signature the receiver checks.',
      'jetty.webhook_url',
    );
  }
  return { url, secret: jetty.webhook_secret };
}

/** Jetty's rule: OpenRouter when its key is there, then Bedrock, then the runtime's own provider. */
function chooseProvider(runtime: RuntimeAdapter, deps: AppDeps): ProviderName {
  for (const p of ['openrouter', 'bedrock'] as const) {
    if (runtime.providers.includes(p) && deps.providerAvailable(p)) return p;
  }
  return LEGACY_PROVIDER[runtime.name];
}
