import { describe, expect, it } from 'vitest';
import type { AgentName } from '../../src/events/types.js';
import { formFor, providersOfForm } from '../../src/providers/model-slugs.js';
import { type RouteRequest, routeModel } from '../../src/providers/routing.js';
import { getRuntime } from '../../src/runtimes/registry.js';
import type { ProviderName } from '../../src/runtimes/types.js';
import { thrown } from '../support/errors.js';

function route(
  agent: AgentName,
  model: string | undefined,
  keys: ProviderName[],
  over: Partial<RouteRequest> = {},
) {
  return routeModel({
    runtime: getRuntime(agent)!,
    model,
    modelParam: 'messages[0].content.frontmatter.model',
    provider: undefined,
    providerParam: null,
    switched: false,
    available: new Set<ProviderName>([...keys, 'simulated']),
    collection: 'acme',
    ...over,
  });
}

describe('model slug forms', () => {
  it.each([
    ['gpt-5.5', 'openrouter', 'openai/gpt-5.5'],
    ['openai/gpt-5.5', 'openai', 'gpt-5.5'],
    ['claude-sonnet-4-6', 'openrouter', 'anthropic/claude-sonnet-4.6'],
    ['anthropic/claude-sonnet-4.6', 'anthropic', 'claude-sonnet-4-6'],
    ['google/gemini-2.5-pro', 'google', 'gemini-2.5-pro'],
    ['gemini-2.5-pro', 'openrouter', 'google/gemini-2.5-pro'],
    [
      'us.anthropic.claude-sonnet-4-5-20250929-v1:0',
      'bedrock',
      'us.anthropic.claude-sonnet-4-5-20250929-v1:0',
    ],
    ['deepseek/deepseek-chat', 'openrouter', 'deepseek/deepseek-chat'],
    ['anything-at-all', 'simulated', 'anything-at-all'],
  ] as const)('%s on %s is %s', (model, provider, form) => {
    expect(formFor(model, provider)).toBe(form);
  });

  it.each([
    ['gpt-5.5', 'google'],
    ['claude-sonnet-4-6', 'openai'],
    ['gemini-2.5-pro', 'anthropic'],
    ['claude-sonnet-4-6', 'bedrock'],
    ['us.anthropic.claude-sonnet-4-5-20250929-v1:0', 'openrouter'],
  ] as const)('%s is not served by %s', (model, provider) => {
    expect(formFor(model, provider)).toBeNull();
  });

  it('the form names the natural provider', () => {
    expect(providersOfForm('gpt-5.5')).toEqual(['openai']);
    expect(providersOfForm('anthropic/claude-sonnet-4.6')).toEqual(['openrouter']);
    expect(providersOfForm('claude-sonnet-4-6')).toEqual(['anthropic']);
    expect(providersOfForm('mystery-model')).toEqual([]);
  });
});

describe('provider routing with no provider named (Jetty’s per-runtime table)', () => {
  it('codex with bare gpt-5.5 goes to openai, not to OpenRouter because its key is there', () => {
    expect(route('codex', 'gpt-5.5', ['openai', 'openrouter'])).toEqual({
      provider: 'openai',
      model: 'gpt-5.5',
      warnings: [],
    });
  });

  it('the natural provider’s key missing: rewritten to a provider that serves the model, with a warning', () => {
    const r = route('claude-code', 'claude-sonnet-4-6', ['openrouter']);
    expect([r.provider, r.model]).toEqual(['openrouter', 'anthropic/claude-sonnet-4.6']);
    expect(r.warnings).toEqual([
      { code: 'model_rewritten', message: expect.stringContaining('as "anthropic/claude-sonnet-4.6"') },
    ]);
    const back = route('claude-code', 'anthropic/claude-sonnet-4.6', ['anthropic']);
    expect([back.provider, back.model]).toEqual(['anthropic', 'claude-sonnet-4-6']);
    expect(back.warnings[0]?.code).toBe('model_rewritten');
    const codex = route('codex', 'gpt-5.5', ['openrouter']);
    expect([codex.provider, codex.model]).toEqual(['openrouter', 'openai/gpt-5.5']);
  });

  it('no key that serves the model: a 400 naming the natural key and the alternatives', () => {
    const err = thrown(() => route('claude-code', 'claude-sonnet-4-6', []));
    expect(err.code).toBe('provider_key_missing');
    expect(err.message).toContain('ANTHROPIC_API_KEY');
    expect(err.message).toContain('OPENROUTER_API_KEY, which serves it as "anthropic/claude-sonnet-4.6"');
  });

  it('a model the runtime’s providers cannot serve is refused before it starts', () => {
    const err = thrown(() => route('gemini-cli', 'gpt-5.5', ['google', 'openai']));
    expect(err.status).toBe(400);
    expect(err.code).toBe('model_unsupported');
    expect(err.param).toBe('messages[0].content.frontmatter.model');
    expect(err.message).toContain('gemini-cli cannot run the model "gpt-5.5"');
  });

  it('gemini-cli takes google/gemini-2.5-pro as gemini-2.5-pro on google', () => {
    expect(route('gemini-cli', 'google/gemini-2.5-pro', ['google'])).toMatchObject({
      provider: 'google',
      model: 'gemini-2.5-pro',
    });
  });

  it('no model named: OpenRouter when its key is there, else the runtime’s own, with the default model', () => {
    expect(route('claude-code', undefined, ['openrouter', 'anthropic'])).toMatchObject({
      provider: 'openrouter',
      model: 'anthropic/claude-sonnet-4.6',
    });
    expect(route('codex', undefined, ['openai'])).toMatchObject({ provider: 'openai', model: 'gpt-5.5' });
  });
});

describe('provider named', () => {
  it('refuses a slug in the wrong form for it, and a model it does not serve', () => {
    const p = { provider: 'openrouter' as const, providerParam: 'jetty.model_provider' };
    expect(thrown(() => route('claude-code', 'claude-sonnet-4-6', ['openrouter'], p)).message).toContain(
      'anthropic/claude-sonnet-4.6',
    );
    const google = { provider: 'google' as const, providerParam: 'jetty.model_provider' };
    expect(thrown(() => route('gemini-cli', 'gpt-5.5', ['google'], google)).code).toBe('model_unsupported');
  });

  it('simulated takes any model on any runtime', () => {
    const sim = { provider: 'simulated' as const, providerParam: 'jetty.model_provider' };
    expect(route('gemini-cli', 'anthropic/claude-sonnet-4.6', [], sim)).toMatchObject({
      provider: 'simulated',
      model: 'anthropic/claude-sonnet-4.6',
    });
  });
});

describe('a runbook moved to another runtime by jetty.agent', () => {
  const switched = { switched: true };

  it('keeps the runbook’s model where the new runtime can use it', () => {
    expect(route('opencode', 'claude-sonnet-4-6', ['anthropic'], switched)).toEqual({
      provider: 'anthropic',
      model: 'claude-sonnet-4-6',
      warnings: [],
    });
    const codex = route('codex', 'anthropic/claude-sonnet-4.6', ['openrouter'], {
      ...switched,
      provider: 'openrouter',
      providerParam: 'messages[0].content.frontmatter.model_provider',
    });
    expect([codex.provider, codex.model, codex.warnings]).toEqual([
      'openrouter',
      'anthropic/claude-sonnet-4.6',
      [],
    ]);
  });

  it('a Claude model on gemini-cli: the runtime’s default model for a provider with a key, and a warning', () => {
    const r = route('gemini-cli', 'claude-sonnet-4-6', ['google', 'anthropic'], switched);
    expect([r.provider, r.model]).toEqual(['google', 'gemini-2.5-pro']);
    expect(r.warnings).toEqual([
      {
        code: 'model_replaced',
        message: expect.stringContaining('default model "gemini-2.5-pro" on google'),
      },
    ]);
  });

  it('the runbook’s provider the new runtime cannot use is dropped, with a warning', () => {
    const r = route('gemini-cli', 'anthropic/claude-sonnet-4.6', ['google', 'openrouter'], {
      ...switched,
      provider: 'openrouter',
      providerParam: 'messages[0].content.frontmatter.model_provider',
    });
    expect([r.provider, r.model]).toEqual(['google', 'gemini-2.5-pro']);
    expect(r.warnings.map((w) => w.code)).toEqual(['provider_replaced', 'model_replaced']);
  });

  it('only when no provider fits is it a 400 naming the providers the runtime can use', () => {
    const err = thrown(() => route('gemini-cli', 'claude-sonnet-4-6', ['anthropic', 'openrouter'], switched));
    expect(err.status).toBe(400);
    expect(err.code).toBe('no_provider_for_runtime');
    expect(err.param).toBe('jetty.agent');
    expect(err.message).toContain('google (GEMINI_API_KEY), vertex (VERTEX_API_KEY)');
  });
});
