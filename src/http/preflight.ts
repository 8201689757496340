import type { CollectionEgress } from '../egress/policy.js';
import { badRequest, notFound, quoted } from '../errors.js';
import type { RunWarning } from '../events/types.js';
import { routeModel } from '../providers/routing.js';
import { validateSimulateScript } from '../providers/simulated/index.js';
import { providerOfKeyVariable } from '../providers/upstreams.js';
import type { RunAsset, RunSecret } from '../queue/catalog.js';
import type { NewRun } from '../queue/run-service.js';
import { type ResolvedRunbook, resolveRunbook } from '../runbook/resolve.js';
import type { SecretSpec } from '../runbook/schema.js';
import type { VariablesField } from '../runbook/template.js';
import { getRuntime } from '../runtimes/registry.js';
import type { ProviderName, RuntimeAdapter } from '../runtimes/types.js';
import { availableProviders } from '../tenancy/provider-keys.js';
import { type BudgetContext, budgetContext, planBudget } from './budget-preflight.js';
import type { AppDeps } from './deps.js';
import { planEgress } from './egress-preflight.js';
import { planEnvironment, plannedCommands, planResources } from './environment-preflight.js';
import { planRunEvaluation } from './evaluation-preflight.js';
import type { ChatRequest } from './schemas.js';

/** What the pre-flight knows of the caller's collection: its variable names and usable providers. */
export interface CollectionContext {
  collection: string;
  variables: ReadonlySet<string>;
  providers: ReadonlySet<ProviderName>;
  /** Budget settings and today's spend, for the run's budget and the daily limit. */
  budget: BudgetContext;
  /** The collection's egress setting (null policy: the operator's). */
  egress: CollectionEgress;
}

/** Reads the collection's variable names (never values) and the providers it can use. */
export async function collectionContext(deps: AppDeps, collection: string): Promise<CollectionContext> {
  const [{ configured }, budget, egress] = await Promise.all([
    deps.tenancy.checkSecrets(collection, []),
    budgetContext(deps, collection),
    deps.tenancy.getEgressSettings(collection),
  ]);
  const variables = new Set(configured);
  const providers = availableProviders(variables, {
    serverKeys: deps.serverProviderKeys,
    simulated: deps.simulatedProvider,
  });
  return { collection, variables, providers, budget, egress };
}

export interface PlannedRun {
  job: NewRun;
  collection: string;
  task: string | null;
  stream: boolean;
  timeoutHintSec: number;
  runtime: RuntimeAdapter;
  /** What the user should know before the run starts: they go on the record and the run's stream. */
  warnings: RunWarning[];
  /**
   * What the run starts with, for the Jetty trajectory's `init_params`: variables after defaults,
   * agent, model, provider, snapshot, file paths. Never a secret value.
   */
  initParams: Record<string, unknown>;
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
  opts: {
    secretParams?: ReadonlySet<string>;
    assets?: RunAsset[];
    /** Where this caller gives template variables (the 422's example shows it). */
    variablesField?: VariablesField;
  } = {},
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
  const budget = planBudget(jetty, deps.defaults.budget, ctx.budget, ctx.collection);

  const resolved = resolveRunbook({
    runbookText,
    systemMessageIndex: sysIndex,
    requestModel: body.model,
    jetty,
    ...(opts.variablesField ? { variablesField: opts.variablesField } : {}),
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

  const route = routeModel({
    runtime,
    model: resolved.model,
    modelParam: resolved.sources.model.param,
    provider: resolved.provider,
    providerParam: resolved.sources.provider.param,
    switched: isSwitch(resolved),
    available: ctx.providers,
    collection: ctx.collection,
  });
  const provider = route.provider;
  if (provider === 'simulated') {
    if (!ctx.providers.has('simulated')) {
      throw badRequest(
        'The simulated provider is switched off on this server.',
        resolved.sources.provider.param ?? 'jetty.model_provider',
        'provider_unavailable',
      );
    }
    const script = validateSimulateScript(resolved.renderedRunbook);
    if (!script.ok) {
      throw badRequest(script.message, `messages[${sysIndex}].content`, 'invalid_simulate_script');
    }
  }

  const max = deps.defaults.sandbox;
  const limits = planResources(jetty, resolved.frontmatter, max, sysIndex);
  const environment = planEnvironment(jetty, resolved.frontmatter, max, sysIndex);
  const egress = planEgress(resolved, jetty, deps.defaults.egress, ctx);
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
  if (remote && egress.policy.mode === 'none') {
    throw badRequest(
      `The MCP server "${remote.name}" is remote (${remote.transport}), but this run's egress policy is none. Its collection's or the server's policy must let it reach that host (PATCH /v1/collection/settings, EGRESS_POLICY), or run the server inside the sandbox ({command, args}).`,
      'jetty.mcp_servers',
      'mcp_needs_network',
    );
  }
  const secrets = planSecrets(resolved.frontmatter.secrets ?? {}, {
    ctx,
    secretParams: opts.secretParams,
    sysIndex,
    runProvider: provider,
  });
  const evaluation = planRunEvaluation({
    resolved,
    jetty,
    run: { model: route.model, provider },
    available: ctx.providers,
    judge: deps.defaults.evaluation?.judge,
    sysIndex,
  });
  const instruction = body.messages
    .filter((_, i) => i !== sysIndex)
    .filter((m) => m.role === 'user')
    .map((m) => textOf(m.content))
    .join('\n\n');

  return {
    job: {
      agent: resolved.agent,
      model: route.model,
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
      limits,
      egress: egress.policy,
      environment,
      commands: plannedCommands(resolved.renderedRunbook),
      mcpServers,
      budget,
      webhook,
      evaluation: evaluation.spec,
    },
    collection: ctx.collection,
    task: jetty.task ?? null,
    stream: body.stream === true,
    timeoutHintSec: jetty.timeout_hint ?? deps.defaults.timeoutHintSec,
    runtime,
    warnings: [...resolved.warnings, ...route.warnings, ...egress.warnings, ...evaluation.warnings],
    initParams: initParamsOf(resolved, route, jetty, environment),
  };
}

/** What the run starts with, as Jetty's `init_params` name it (variables after defaults). */
function initParamsOf(
  resolved: ResolvedRunbook,
  route: { provider: ProviderName; model: string },
  jetty: NonNullable<ChatRequest['jetty']>,
  environment: NewRun['environment'],
): Record<string, unknown> {
  return {
    agent: resolved.agent,
    model: route.model,
    model_provider: route.provider,
    snapshot: environment.snapshot,
    ...(environment.snapshot === null ? { image: environment.image } : {}),
    vars: resolved.templateVariables,
    file_paths: jetty.file_paths ?? [],
    timeout_sec: resolved.timeoutSec,
  };
}

/** Variables a sandbox sets for itself; a secret may not replace them. */
const RESERVED_SANDBOX_VARIABLES: ReadonlySet<string> = new Set(['PATH', 'HOME', 'USER', 'SHELL', 'PWD']);

/**
 * The secrets a runbook declares, checked against the collection: a required one must be set (in
 * the collection, or as a secret parameter of this run). A provider key (OPENAI_API_KEY, …) is one
 * the runbook's own scripts use: it is routed through the gateway (the sandbox holds a per-run
 * token, never the key), to the named provider when the collection has its key, to the simulated
 * provider on a simulated run without one; without either, a required one is refused and an
 * optional one is simply absent.
 */
function planSecrets(
  declared: Record<string, SecretSpec>,
  opts: {
    ctx: CollectionContext;
    secretParams: ReadonlySet<string> | undefined;
    sysIndex: number;
    runProvider: ProviderName;
  },
): RunSecret[] {
  const { ctx } = opts;
  const out: RunSecret[] = [];
  for (const [name, spec] of Object.entries(declared)) {
    const param = `messages[${opts.sysIndex}].content.frontmatter.secrets.${name}`;
    const keyOf = providerOfKeyVariable(spec.env);
    if (keyOf !== undefined) {
      const via = ctx.providers.has(keyOf)
        ? keyOf
        : opts.runProvider === 'simulated' && ctx.providers.has('simulated')
          ? 'simulated'
          : undefined;
      if (via !== undefined) out.push({ name, env: spec.env, required: spec.required, provider: via });
      else if (spec.required) {
        throw badRequest(
          `The runbook's scripts call ${keyOf} (its secret ${name} is ${spec.env}), and collection ${ctx.collection} has no key for ${keyOf}. Set ${spec.env} in the collection's environment (PATCH /api/v1/collections/${ctx.collection}/environment): the scripts then reach ${keyOf} through the gateway with a per-run token, never the key. Or mark the secret \`required: false\`.`,
          param,
          'provider_key_missing',
        );
      }
      continue;
    }
    if (RESERVED_SANDBOX_VARIABLES.has(spec.env) || spec.env.startsWith('JETTY_')) {
      throw badRequest(
        `The secret ${name} names ${spec.env}, a variable the sandbox sets itself (${spec.env.startsWith('JETTY_') ? 'JETTY_* belong to the server' : 'the agent needs it as it is'}). Give the secret another env name.`,
        param,
        'reserved_variable',
      );
    }
    const present = ctx.variables.has(spec.env) || opts.secretParams?.has(spec.env) === true;
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

/**
 * The caller moved the runbook to another runtime with `jetty.agent`, and the model (and any
 * provider) are the runbook's own: a model the new runtime cannot use is then replaced, not
 * refused. A top-level `model` equal to the frontmatter's counts as the runbook's (Jetty's
 * clients copy the frontmatter into the request).
 */
function isSwitch(resolved: ResolvedRunbook): boolean {
  const { sources, frontmatter } = resolved;
  if (sources.agent.from !== 'jetty' || sources.provider.from === 'jetty') return false;
  if (sources.model.from === 'frontmatter' || sources.model.from === 'default') return true;
  return sources.model.from === 'request' && resolved.model === frontmatter.model;
}
