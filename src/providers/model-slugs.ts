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
