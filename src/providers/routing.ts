/**
 * Which provider serves a run, and the model in that provider's form: Jetty's per-runtime table.
 *
 * - A provider named (jetty.model_provider, or the frontmatter's) is used as named; a slug in the
 *   wrong form for it, or a model it does not serve, is refused with the right form.
 * - None named: the model's own form decides (bare `gpt-5.5` → openai, bare `claude-sonnet-4-6`
 *   → anthropic, `vendor/model` → openrouter). When the collection lacks that provider's key but
 *   has another of the runtime's providers serving the same model, the slug is rewritten to that
 *   provider's form, with a warning.
 * - A runbook moved to another runtime by `jetty.agent` keeps its model where the new runtime can
 *   use it; where it cannot, the runtime's default model runs instead, with a warning; only when
 *   no provider fits is it refused, naming the providers the runtime can use.
 */
import { badRequest } from '../errors.js';
import type { AgentName, RunWarning } from '../events/types.js';
import type { ProviderName } from '../runtimes/types.js';
import { checkModelSlug, formFor, providersOfForm } from './model-slugs.js';
import { keyEnvOf } from './upstreams.js';

/** Each runtime's provider when nothing names one and no routing key applies (Jetty's legacy rule). */
export const LEGACY_PROVIDER: Record<AgentName, ProviderName> = {
  'claude-code': 'anthropic',
  codex: 'openai',
  'gemini-cli': 'google',
  opencode: 'openrouter',
  hermes: 'anthropic',
};

export interface RoutedRuntime {
  name: AgentName;
  providers: readonly ProviderName[];
  defaultModel: string;
}

export interface RouteRequest {
  runtime: RoutedRuntime;
  /** The model asked for; undefined when nothing named one. */
  model: string | undefined;
  /** Where the model came from, for errors (null: a default). */
  modelParam: string | null;
  /** The provider named, if any, and where. */
  provider: ProviderName | undefined;
  providerParam: string | null;
  /**
   * The runtime is the caller's `jetty.agent` and the model (and any provider) the runbook's own:
   * a runbook moved to another runtime, which may take another model rather than fail.
   */
  switched: boolean;
  /** The providers the collection can use (its keys, the server's, and simulated when on). */
  available: ReadonlySet<ProviderName>;
  collection: string;
}

export interface Route {
  provider: ProviderName;
  model: string;
  warnings: RunWarning[];
}

export function routeModel(req: RouteRequest): Route {
  const { runtime } = req;
  const warnings: RunWarning[] = [];
  let provider = req.provider;
  if (provider !== undefined && !runtime.providers.includes(provider)) {
    if (!req.switched) {
      throw badRequest(
        `The runtime ${runtime.name} cannot use the provider "${provider}". It runs with: ${runtime.providers.join(', ')}.`,
        req.providerParam ?? 'jetty.model_provider',
        'provider_unsupported',
      );
    }
    warnings.push({
      code: 'provider_replaced',
      message: `The runbook names the provider ${provider}, which ${runtime.name} cannot use (it runs with ${runtime.providers.join(', ')}); the provider is chosen for ${runtime.name} instead.`,
    });
    provider = undefined;
  }
  const route =
    provider !== undefined
      ? namedProvider(req, provider)
      : req.model === undefined
        ? defaultRoute(req)
        : unnamed(req);
  return { ...route, warnings: [...warnings, ...route.warnings] };
}

/** A provider was named: used as named, the slug checked against it. */
function namedProvider(req: RouteRequest, provider: ProviderName): Route {
  const { runtime } = req;
  const providerParam = req.providerParam ?? 'jetty.model_provider';
  if (provider !== 'simulated' && !req.available.has(provider))
    throw keyMissing(req, provider, providerParam);
  if (req.model === undefined) {
    return checked(req, provider, formFor(runtime.defaultModel, provider) ?? runtime.defaultModel, true);
  }
  const served = formFor(req.model, provider);
  if (served === null && req.switched) return replaced(req, [provider]);
  const route = checked(req, provider, req.model, false);
  if (served === null) throw unsupported(req, req.model);
  return route;
}

/** No model named anywhere: Jetty's order (OpenRouter, Bedrock, the runtime's own), the runtime's default model. */
function defaultRoute(req: RouteRequest): Route {
  const { runtime } = req;
  const order = unique(['openrouter', 'bedrock', LEGACY_PROVIDER[runtime.name], ...runtime.providers]);
  for (const p of order) {
    if (p === 'simulated' || !runtime.providers.includes(p) || !req.available.has(p)) continue;
    const model = formFor(runtime.defaultModel, p);
    if (model !== null) return checked(req, p, model, true);
  }
  throw keyMissing(req, LEGACY_PROVIDER[runtime.name], req.providerParam ?? 'jetty.model_provider');
}

/** A model and no provider: the provider its form names, else another serving it, rewritten. */
function unnamed(req: RouteRequest): Route {
  const { runtime } = req;
  const model = req.model as string;
  const natural = providersOfForm(model).filter((p) => runtime.providers.includes(p));
  // A bare model this table does not know: Jetty's key-based order, the slug check decides.
  if (natural.length === 0 && providersOfForm(model).length === 0) return unknownForm(req, model);
  const first = natural.find((p) => req.available.has(p));
  if (first !== undefined) return checked(req, first, formFor(model, first) ?? model, false);
  const servers = runtime.providers.filter((p) => p !== 'simulated' && formFor(model, p) !== null);
  const order = unique([...natural, 'openrouter', ...servers]).filter((p) => servers.includes(p));
  const other = order.find((p) => req.available.has(p));
  if (other !== undefined) {
    const rewritten = formFor(model, other) as string;
    const wanted = natural[0] ?? servers[0];
    return {
      ...checked(req, other, rewritten, false),
      warnings: [
        {
          code: 'model_rewritten',
          message: `Collection ${req.collection} has no key for ${wanted ?? 'the provider the model names'}; ${runtime.name} runs "${model}" through ${other} instead, as "${rewritten}". Set ${keyEnvOf(wanted ?? other) ?? 'its key'} or name \`model_provider\` to choose.`,
        },
      ],
    };
  }
  if (servers.length === 0) {
    if (req.switched) return replaced(req, []);
    throw unsupported(req, model);
  }
  throw keyMissing(req, natural[0] ?? servers[0]!, req.providerParam ?? 'jetty.model_provider', model);
}

function unknownForm(req: RouteRequest, model: string): Route {
  const { runtime } = req;
  const order = unique(['openrouter', 'bedrock', LEGACY_PROVIDER[runtime.name]]);
  const p =
    order.find((x) => x !== 'simulated' && runtime.providers.includes(x) && req.available.has(x)) ??
    LEGACY_PROVIDER[runtime.name];
  if (!req.available.has(p)) throw keyMissing(req, p, req.providerParam ?? 'jetty.model_provider');
  return checked(req, p, model, false);
}

/** The runtime cannot use the runbook's model: its own default, for a provider with a key. */
function replaced(req: RouteRequest, tried: ProviderName[]): Route {
  const { runtime } = req;
  const model = req.model as string;
  const order = unique([LEGACY_PROVIDER[runtime.name], ...runtime.providers]);
  for (const p of order) {
    if (p === 'simulated' || !runtime.providers.includes(p) || !req.available.has(p)) continue;
    const fallback = formFor(runtime.defaultModel, p);
    if (fallback === null) continue;
    const via = tried.length > 0 ? ` through ${tried.join(', ')}` : '';
    return {
      ...checked(req, p, fallback, true),
      warnings: [
        {
          code: 'model_replaced',
          message: `${runtime.name} cannot run the runbook's model "${model}"${via} (it runs with ${usable(runtime)}); it runs its default model "${fallback}" on ${p} instead. Name a model ${runtime.name} runs to choose another.`,
        },
      ],
    };
  }
  const keys = runtime.providers.filter((p) => p !== 'simulated').map((p) => `${p} (${keyEnvOf(p)})`);
  throw badRequest(
    `${runtime.name} cannot run the runbook's model "${model}", and collection ${req.collection} has a key for none of the providers ${runtime.name} runs with: ${keys.join(', ')}. Set one of those keys, choose another agent, or run against the built-in simulated provider with "model_provider": "simulated".`,
    'jetty.agent',
    'no_provider_for_runtime',
  );
}

/** The slug checked against the provider's form; a wrong one is a 400 with the right form. */
function checked(req: RouteRequest, provider: ProviderName, model: string, isDefault: boolean): Route {
  const slug = checkModelSlug(model, provider, req.runtime.name);
  if (!slug.ok) {
    const hint = isDefault ? ' No model was named: set `model` in the request or the frontmatter.' : '';
    throw badRequest(slug.message + hint, req.modelParam ?? 'model', 'model_slug_invalid');
  }
  return { provider, model: slug.model, warnings: [] };
}

function unsupported(req: RouteRequest, model: string) {
  const { runtime } = req;
  return badRequest(
    `The runtime ${runtime.name} cannot run the model "${model}": it runs with ${usable(runtime)}, and none of them serves that model (its default is "${runtime.defaultModel}"). Name a model ${runtime.name} runs, or choose an agent that runs "${model}".`,
    req.modelParam ?? 'model',
    'model_unsupported',
  );
}

function keyMissing(req: RouteRequest, provider: ProviderName, param: string, model?: string) {
  const alternatives = req.runtime.providers.filter(
    (p) => p !== provider && p !== 'simulated' && model !== undefined && formFor(model, p) !== null,
  );
  const or =
    alternatives.length > 0 && model !== undefined
      ? ` (or ${alternatives.map((p) => `${keyEnvOf(p)}, which serves it as "${formFor(model, p)}"`).join('; or ')})`
      : '';
  return badRequest(
    `No key for the provider "${provider}": set ${keyEnvOf(provider)}${or} in the environment of collection ${req.collection} (PATCH /api/v1/collections/${req.collection}/environment). Or run against the built-in simulated provider with "model_provider": "simulated".`,
    param,
    'provider_key_missing',
  );
}

function usable(runtime: RoutedRuntime): string {
  return runtime.providers.filter((p) => p !== 'simulated').join(', ');
}

function unique(items: readonly ProviderName[]): ProviderName[] {
  return [...new Set(items)];
}
