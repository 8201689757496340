import { describe, expect, it } from 'vitest';
import { checkModelSlug, openRouterFormOf } from '../../src/providers/model-slugs.js';

describe('model slugs per provider', () => {
  it('OpenRouter wants vendor/model with dotted versions', () => {
    expect(openRouterFormOf('claude-sonnet-4-6')).toBe('anthropic/claude-sonnet-4.6');
    const bare = checkModelSlug('claude-sonnet-4-6', 'openrouter', 'claude-code');
    expect(bare.ok).toBe(false);
    expect(!bare.ok && bare.message).toMatch(/anthropic\/claude-sonnet-4\.6/);
    expect(checkModelSlug('anthropic/claude-sonnet-4-6', 'openrouter', 'claude-code').ok).toBe(false);
    expect(checkModelSlug('anthropic/claude-sonnet-4.6', 'openrouter', 'claude-code')).toEqual({
      ok: true,
      model: 'anthropic/claude-sonnet-4.6',
    });
    expect(checkModelSlug('deepseek/deepseek-chat', 'openrouter', 'opencode').ok).toBe(true);
  });

  it('Bedrock wants cross-region profiles for Anthropic models', () => {
    const bare = checkModelSlug('anthropic.claude-sonnet-4-5-20250929-v1:0', 'bedrock', 'claude-code');
    expect(!bare.ok && bare.message).toMatch(/us\.anthropic\.claude-sonnet-4-5-20250929-v1:0/);
    expect(checkModelSlug('us.anthropic.claude-sonnet-4-5-20250929-v1:0', 'bedrock', 'claude-code').ok).toBe(
      true,
    );
    expect(checkModelSlug('deepseek.v3.2', 'bedrock', 'claude-code').ok).toBe(false);
    expect(checkModelSlug('deepseek.v3.2', 'bedrock', 'hermes').ok).toBe(true);
  });

  it('direct APIs take bare ids; Gemini ids lose their vendor prefix', () => {
    expect(checkModelSlug('anthropic/claude-sonnet-4.6', 'anthropic', 'claude-code').ok).toBe(false);
    expect(checkModelSlug('openai/gpt-5.5', 'openai', 'codex').ok).toBe(false);
    expect(checkModelSlug('google/gemini-2.5-pro', 'google', 'gemini-cli')).toEqual({
      ok: true,
      model: 'gemini-2.5-pro',
    });
    expect(checkModelSlug('anything-at-all', 'simulated', 'codex').ok).toBe(true);
  });
});
