import { MIN_SANDBOX_DISK, parseBytes } from '../config/index.js';
import { badRequest, notFound } from '../errors.js';
import type { AgentName } from '../events/types.js';
import { checkModelSlug, openRouterFormOf } from '../providers/model-slugs.js';
import { validateSimulateScript } from '../providers/simulated/index.js';
import { keyEnvOf } from '../providers/upstreams.js';
import type { RunAsset, RunSecret } from '../queue/catalog.js';
import type { NewRun } from '../queue/run-service.js';
import { resolveRunbook } from '../runbook/resolve.js';
import type { SecretSpec } from '../runbook/schema.js';
import { getRuntime } from '../runtimes/registry.js';
import type { ProviderName, RuntimeAdapter } from '../runtimes/types.js';
import { quoted } from '../tenancy/names.js';
import { availableProviders, PROVIDER_KEY_VARIABLES } from '../tenancy/provider-keys.js';
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

/** What the pre-flight knows of the caller's collection: its variable names and usable providers. */
export interface CollectionContext {
  collection: string;
  variables: ReadonlySet<string>;
  providers: ReadonlySet<ProviderName>;
}

/** Reads the collection's variable names (never values) and the providers it can use. */
export async function collectionContext(deps: AppDeps, collection: string): Promise<CollectionContext> {
  const { configured } = await deps.tenancy.checkSecrets(collection, []);
  const variables = new Set(configured);
  const providers = availableProviders(variables, {
    serverKeys: deps.serverProviderKeys,
    simulated: deps.simulatedProvider,
  });
  return { collection, variables, providers };
}

export interface PlannedRun {
  job: NewRun;
  collection: string;
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
export function planRun(
  body: ChatRequest,
  deps: AppDeps,
  ctx: CollectionContext,
  opts: { secretParams?: ReadonlySet<string>; assets?: RunAsset[] } = {},
): PlannedRun {
  const jetty = body.jetty;
  if (!jetty) throw new Error('planRun needs a jetty block; a request without one is a passthrough call');
  if (jetty.collection !== undefined && jetty.collection !== ctx.collection) {
    // Exactly what a collection that does not exist gets: a key says nothing of other collections.
    throw notFound(
      `No collection named ${quoted(jetty.collection)}. Your API key belongs to ${ctx.collection}; leave jetty.collection out or set it to that.`,
      'collection_not_found',
    );
  }
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

  const provider = resolved.provider ?? chooseProvider(runtime, ctx);
  const providerParam = resolved.sources.provider.param ?? 'jetty.model_provider';
  if (!runtime.providers.includes(provider)) {
    throw badRequest(
      `The runtime ${runtime.name} cannot use the provider "${provider}". It runs with: ${runtime.providers.join(', ')}.`,
      providerParam,
      'provider_unsupported',
    );
  }
  if (provider === 'simulated') {
    if (!ctx.providers.has('simulated')) {
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
  } else if (!ctx.providers.has(provider)) {
    throw badRequest(
      `No key for the provider "${provider}": set ${keyEnvOf(provider)} in the environment of collection ${ctx.collection} (PATCH /api/v1/collections/${ctx.collection}/environment). Or run against the built-in simulated provider with "model_provider": "simulated".`,
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
  const secrets = planSecrets(resolved.frontmatter.secrets ?? {}, ctx, opts.secretParams, sysIndex);
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
      primaryOutputs: resolved.primaryOutputs,
      collection: ctx.collection,
      secrets,
      assets: opts.assets ?? [],
      timeoutSec: resolved.timeoutSec,
      limits: { cpus, memoryBytes: max.memoryBytes, pids: max.pids, diskBytes: diskOf(jetty.disk, max) },
      network: jetty.network_enabled ? 'bridge' : 'none',
      mcpServers,
      webhook,
    },
    collection: ctx.collection,
    task: jetty.task ?? null,
    stream: body.stream === true,
    timeoutHintSec: jetty.timeout_hint ?? deps.defaults.timeoutHintSec,
    runtime,
  };
}

/** The run's writable space: the server's default, or what jetty.disk asks for up to the maximum. */
function diskOf(
  value: string | number | undefined,
  max: { diskBytes: number; maxDiskBytes: number },
): number {
  if (value === undefined) return max.diskBytes;
  const n = typeof value === 'number' ? value : parseBytes(value);
  if (n === null || !Number.isSafeInteger(n) || n < MIN_SANDBOX_DISK) {
    throw badRequest(
      `\`jetty.disk\` must be a size of at least 64m, such as "2g", "512m" or a number of bytes; got ${JSON.stringify(value)}.`,
      'jetty.disk',
    );
  }
  if (n > max.maxDiskBytes) {
    throw badRequest(
      `\`jetty.disk\` asks for ${n} bytes; this server allows at most ${max.maxDiskBytes} (SANDBOX_MAX_DISK). Ask for less or leave it out (default ${max.diskBytes}).`,
      'jetty.disk',
    );
  }
  return n;
}

/** Variables a sandbox sets for itself; a secret may not replace them. */
const RESERVED_SANDBOX_VARIABLES: ReadonlySet<string> = new Set(['PATH', 'HOME', 'USER', 'SHELL', 'PWD']);

/**
 * The secrets a runbook declares, checked against the collection: a provider key can never be
 * one (the gateway holds those), and a required one must be set (in the collection, or as a
 * secret parameter of this run).
 */
function planSecrets(
  declared: Record<string, SecretSpec>,
  ctx: CollectionContext,
  secretParams: ReadonlySet<string> | undefined,
  sysIndex: number,
): RunSecret[] {
  const out: RunSecret[] = [];
  for (const [name, spec] of Object.entries(declared)) {
    const param = `messages[${sysIndex}].content.frontmatter.secrets.${name}`;
    if (PROVIDER_KEY_VARIABLES.has(spec.env)) {
      throw badRequest(
        `The secret ${name} names ${spec.env}, a provider key. Provider keys never enter the sandbox: the gateway presents them for the agent. Remove ${name} from \`secrets\`; set ${spec.env} in the collection's environment and the runs use it.`,
        param,
        'provider_key_as_secret',
      );
    }
    if (RESERVED_SANDBOX_VARIABLES.has(spec.env) || spec.env.startsWith('JETTY_')) {
      throw badRequest(
        `The secret ${name} names ${spec.env}, a variable the sandbox sets itself (${spec.env.startsWith('JETTY_') ? 'JETTY_* belong to the server' : 'the agent needs it as it is'}). Give the secret another env name.`,
        param,
        'reserved_variable',
      );
    }
    const present = ctx.variables.has(spec.env) || secretParams?.has(spec.env) === true;
    if (spec.required && !present) {
      throw badRequest(
        `The runbook needs the secret ${name} (environment variable ${spec.env}), and collection ${ctx.collection} has no ${spec.env}. Set it with PATCH /api/v1/collections/${ctx.collection}/environment {"environment_variables": {"${spec.env}": "…"}}, or mark it \`required: false\`.`,
        param,
        'secret_missing',
      );
    }
    out.push({ name, env: spec.env, required: spec.required });
  }
  return out;
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
function chooseProvider(runtime: RuntimeAdapter, ctx: CollectionContext): ProviderName {
  for (const p of ['openrouter', 'bedrock'] as const) {
    if (runtime.providers.includes(p) && ctx.providers.has(p)) return p;
  }
  return LEGACY_PROVIDER[runtime.name];
}
