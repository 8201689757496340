/**
 * Which provider key a collection's runs use: the collection's own (a variable of its environment
 * named as the provider's key variable, e.g. ANTHROPIC_API_KEY), else the server's (set in the
 * server's environment, shared by every collection without its own). The API asks which providers
 * a collection can use; the worker asks for the key itself, once per run.
 */
import { isRealProvider, type RealProvider, UPSTREAMS } from '../providers/upstreams.js';
import { PROVIDER_NAMES, type ProviderName } from '../runtimes/types.js';
import type { TenancyStore } from './store.js';

/** Every variable name that holds a provider key. Such a variable never enters a sandbox. */
export const PROVIDER_KEY_VARIABLES: ReadonlySet<string> = new Set(
  Object.values(UPSTREAMS).flatMap((u) => u.keyEnv),
);

export interface ProviderKeySource {
  serverKeys: Partial<Record<RealProvider, string>>;
  simulated: boolean;
}

/** The providers usable by a collection whose environment has these variable names. */
export function availableProviders(
  variableNames: Iterable<string>,
  source: ProviderKeySource,
): Set<ProviderName> {
  const names = new Set(variableNames);
  const out = new Set<ProviderName>();
  for (const p of PROVIDER_NAMES) {
    if (p === 'simulated') {
      if (source.simulated) out.add(p);
    } else if (source.serverKeys[p] || UPSTREAMS[p].keyEnv.some((k) => names.has(k))) {
      out.add(p);
    }
  }
  return out;
}

/** The key a run of `collection` presents to `provider`, or undefined when there is none. */
export async function providerKeyFor(
  tenancy: TenancyStore,
  collection: string,
  provider: ProviderName,
  source: ProviderKeySource,
): Promise<string | undefined> {
  if (!isRealProvider(provider)) return undefined;
  const vars = UPSTREAMS[provider].keyEnv;
  const own = await tenancy.resolveEnvironment(collection, vars);
  return vars.map((v) => own[v]).find((v) => v !== undefined) ?? source.serverKeys[provider];
}
