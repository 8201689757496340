import type { AgentName } from '../events/types.js';
import type { ProviderName } from '../runtimes/types.js';

/**
 * The form a model slug takes for each provider. A slug in the wrong form is the most common cause
 * of a run that "exits in seconds having produced nothing", so it is caught before the run is
 * queued, with the right form in the message.
 */
export type SlugCheck = { ok: true; model: string } | { ok: false; message: string };

/** `claude-sonnet-4-6` → `anthropic/claude-sonnet-4.6` (OpenRouter writes versions with a dot). */
export function openRouterFormOf(model: string): string | null {
  const m = /^(?:anthropic\/)?(claude-[a-z]+)-(\d+)-(\d+)(?:-\d{8})?$/.exec(model);
  if (m) return `anthropic/${m[1]}-${m[2]}.${m[3]}`;
  if (/^(gpt-|o\d)/.test(model)) return `openai/${model}`;
  if (/^gemini-/.test(model)) return `google/${model}`;
  return null;
}

export function checkModelSlug(model: string, provider: ProviderName, agent: AgentName): SlugCheck {
  switch (provider) {
    case 'openrouter': {
      const suggestion = openRouterFormOf(model);
      if (!model.includes('/')) {
        return {
          ok: false,
          message: `OpenRouter model ids are vendor/model, e.g. ${suggestion ?? 'anthropic/claude-sonnet-4.6'}; "${model}" is not an OpenRouter id.`,
        };
      }
      if (suggestion && suggestion !== model && model.startsWith('anthropic/')) {
        return {
          ok: false,
          message: `OpenRouter writes Anthropic versions with a dot: use "${suggestion}", not "${model}".`,
        };
      }
      return { ok: true, model };
    }
    case 'bedrock': {
      if (/^anthropic\./.test(model)) {
        return {
          ok: false,
          message: `Bedrock serves Anthropic models through cross-region inference profiles: use "us.${model}" (or eu./apac./global.), not the bare "${model}".`,
        };
      }
      if (/^claude-/.test(model) || model.includes('/')) {
        return {
          ok: false,
          message: `"${model}" is not a Bedrock model id. Bedrock ids look like "us.anthropic.claude-sonnet-4-5-20250929-v1:0".`,
        };
      }
      if (agent === 'claude-code' && !/^(us|eu|apac|global|us-gov)\.anthropic\./.test(model)) {
        return {
          ok: false,
          message: `claude-code on Bedrock runs Anthropic models only, as cross-region profiles like "us.anthropic.claude-sonnet-4-5-20250929-v1:0"; "${model}" is not one (hermes runs other Bedrock models).`,
        };
      }
      return { ok: true, model };
    }
    case 'anthropic':
      if (model.includes('/')) {
        const bare = model.replace(/^anthropic\//, '').replace(/(\d+)\.(\d+)$/, '$1-$2');
        return {
          ok: false,
          message: `The Anthropic API takes bare model ids like "${bare}", not "${model}".`,
        };
      }
      return { ok: true, model };
    case 'openai':
      if (model.includes('/')) {
        return {
          ok: false,
          message: `The OpenAI API takes bare model ids like "${model.replace(/^openai\//, '')}", not "${model}".`,
        };
      }
      return { ok: true, model };
    case 'google':
    case 'vertex':
      // Gemini ids are taken with or without the vendor prefix: `google/gemini-2.5-pro` ≡ `gemini-2.5-pro`.
      return { ok: true, model: model.replace(/^(google|gemini)\//, '') };
    case 'simulated':
      return { ok: true, model };
  }
}

/** Whose model a slug names, whatever provider form it is written in. */
export type ModelVendor = 'anthropic' | 'openai' | 'google' | 'other';

const BEDROCK_FORM_RE = /^(?:(?:us|eu|apac|global|us-gov)\.)?anthropic\./;

export function vendorOf(model: string): ModelVendor {
  const m = model.trim().toLowerCase();
  if (/^(?:anthropic\/)?claude-/.test(m) || BEDROCK_FORM_RE.test(m)) return 'anthropic';
  if (/^(?:openai\/)?(?:gpt-|o\d|codex)/.test(m)) return 'openai';
  if (/^(?:google\/|gemini\/)?gemini-/.test(m)) return 'google';
  return 'other';
}

const DIRECT_VENDOR: Partial<Record<ProviderName, ModelVendor>> = {
  anthropic: 'anthropic',
  openai: 'openai',
  google: 'google',
  vertex: 'google',
};

/**
 * The slug as `provider` takes it (`claude-sonnet-4-6` ⇄ `anthropic/claude-sonnet-4.6`, `gpt-5.5` ⇄
 * `openai/gpt-5.5`), or null when that provider does not serve the model or its form there is not
 * known. A model this table does not know is left to the provider to judge (kept as written where
 * its form fits).
 */
export function formFor(model: string, provider: ProviderName): string | null {
  const vendor = vendorOf(model);
  const bedrockForm = BEDROCK_FORM_RE.test(model);
  switch (provider) {
    case 'simulated':
      return model;
    case 'openrouter':
      if (bedrockForm) return null;
      return model.includes('/') ? (openRouterFormOf(model) ?? model) : openRouterFormOf(model);
    case 'bedrock':
      // Anthropic models by their inference profile only (its date suffix cannot be guessed);
      // third-party catalog ids (`deepseek.v3.2`) as written.
      if (bedrockForm) return model;
      return vendor === 'other' && !model.includes('/') ? model : null;
    default: {
      const own = DIRECT_VENDOR[provider];
      if (vendor === 'other') return model.includes('/') ? null : model;
      if (vendor !== own || bedrockForm) return null;
      const bare = model.replace(/^(?:anthropic|openai|google|gemini)\//, '');
      // Anthropic's API writes versions with dashes: anthropic/claude-sonnet-4.6 → claude-sonnet-4-6.
      return provider === 'anthropic' ? bare.replace(/(\d)\.(\d)/g, '$1-$2') : bare;
    }
  }
}

/**
 * The providers whose own form a slug is written in, most natural first: a bare `gpt-5.5` is
 * OpenAI's, `anthropic/claude-sonnet-4.6` OpenRouter's. Empty when the form says nothing (a bare
 * model this table does not know).
 */
export function providersOfForm(model: string): ProviderName[] {
  if (BEDROCK_FORM_RE.test(model)) return ['bedrock'];
  const vendor = vendorOf(model);
  // gemini-cli takes `google/gemini-2.5-pro` as `gemini-2.5-pro` (Jetty strips the vendor prefix).
  if (model.includes('/')) return vendor === 'google' ? ['openrouter', 'google', 'vertex'] : ['openrouter'];
  if (vendor === 'anthropic') return ['anthropic'];
  if (vendor === 'openai') return ['openai'];
  if (vendor === 'google') return ['google', 'vertex'];
  return [];
}
