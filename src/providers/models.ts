import type { ProviderName } from '../runtimes/types.js';

/**
 * Models GET /v1/models lists: for each provider, the slugs in the form that provider takes. It is
 * a guide, not a gate: any slug in the right form for its provider is accepted.
 */
export const MODELS: ReadonlyArray<{ id: string; provider: ProviderName }> = [
  { id: 'claude-opus-4-7', provider: 'anthropic' },
  { id: 'claude-sonnet-4-6', provider: 'anthropic' },
  { id: 'claude-haiku-4-5', provider: 'anthropic' },
  { id: 'anthropic/claude-opus-4.7', provider: 'openrouter' },
  { id: 'anthropic/claude-sonnet-4.6', provider: 'openrouter' },
  { id: 'openai/gpt-5.5', provider: 'openrouter' },
  { id: 'google/gemini-2.5-pro', provider: 'openrouter' },
  { id: 'us.anthropic.claude-sonnet-4-5-20250929-v1:0', provider: 'bedrock' },
  { id: 'gpt-5.5', provider: 'openai' },
  { id: 'gpt-5-mini', provider: 'openai' },
  { id: 'gemini-2.5-pro', provider: 'google' },
  { id: 'gemini-2.5-flash', provider: 'google' },
];
