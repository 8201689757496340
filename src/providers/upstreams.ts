import type { ProviderName } from '../runtimes/types.js';

/**
 * The real providers behind the gateway: where each one is, which server variable holds its key,
 * and how the key is presented. The CLI in the sandbox never sees any of this: it holds a per-run
 * token, and the gateway swaps it for the key on the way out.
 */
export interface UpstreamSpec {
  /** The server environment variable holding the key (the first one set wins). */
  keyEnv: readonly string[];
  /**
   * For a runbook whose own scripts call the provider with its SDK: the variable the SDK reads its
   * base URL from, and the path the SDK expects under it (OpenAI's SDKs want `…/v1`).
   */
  sdkBaseUrl: { env: string; path: string };
  /** The environment variable that overrides the base URL. */
  urlEnv: string;
  defaultUrl: string;
  /** How the key goes upstream. */
  auth: (key: string) => { header: string; value: string };
}

const bearer = (key: string) => ({ header: 'authorization', value: `Bearer ${key}` });

export const UPSTREAMS: Readonly<Record<Exclude<ProviderName, 'simulated'>, UpstreamSpec>> = {
  anthropic: {
    keyEnv: ['ANTHROPIC_API_KEY'],
    sdkBaseUrl: { env: 'ANTHROPIC_BASE_URL', path: '' },
    urlEnv: 'ANTHROPIC_UPSTREAM_URL',
    defaultUrl: 'https://api.anthropic.com',
    auth: (key) => ({ header: 'x-api-key', value: key }),
  },
  openai: {
    keyEnv: ['OPENAI_API_KEY'],
    sdkBaseUrl: { env: 'OPENAI_BASE_URL', path: '/v1' },
    urlEnv: 'OPENAI_UPSTREAM_URL',
    defaultUrl: 'https://api.openai.com',
    auth: bearer,
  },
  // OpenRouter serves OpenAI's Chat Completions and Responses and Anthropic's Messages under /api/v1.
  openrouter: {
    keyEnv: ['OPENROUTER_API_KEY'],
    // Jetty's runner documents OPENROUTER_BASE_URL; scripts pass it to an OpenAI SDK as base_url.
    sdkBaseUrl: { env: 'OPENROUTER_BASE_URL', path: '/v1' },
    urlEnv: 'OPENROUTER_UPSTREAM_URL',
    defaultUrl: 'https://openrouter.ai/api',
    auth: bearer,
  },
  google: {
    keyEnv: ['GEMINI_API_KEY', 'GOOGLE_API_KEY'],
    sdkBaseUrl: { env: 'GOOGLE_GEMINI_BASE_URL', path: '' },
    urlEnv: 'GOOGLE_UPSTREAM_URL',
    defaultUrl: 'https://generativelanguage.googleapis.com',
    auth: (key) => ({ header: 'x-goog-api-key', value: key }),
  },
  // Vertex AI with an API key (express mode); service-account credentials are not brokered yet.
  vertex: {
    keyEnv: ['VERTEX_API_KEY'],
    sdkBaseUrl: { env: 'GOOGLE_VERTEX_BASE_URL', path: '' },
    urlEnv: 'VERTEX_UPSTREAM_URL',
    defaultUrl: 'https://aiplatform.googleapis.com',
    auth: (key) => ({ header: 'x-goog-api-key', value: key }),
  },
  // Bedrock API keys are bearer tokens; the region is part of the URL.
  bedrock: {
    keyEnv: ['AWS_BEARER_TOKEN_BEDROCK'],
    sdkBaseUrl: { env: 'AWS_ENDPOINT_URL_BEDROCK_RUNTIME', path: '' },
    urlEnv: 'BEDROCK_UPSTREAM_URL',
    defaultUrl: 'https://bedrock-runtime.us-east-1.amazonaws.com',
    auth: bearer,
  },
};

export type RealProvider = keyof typeof UPSTREAMS;

export function isRealProvider(p: ProviderName): p is RealProvider {
  return p !== 'simulated';
}

/** The variable a user sets to give the server a provider's key, for error messages. */
export function keyEnvOf(p: ProviderName): string | null {
  return isRealProvider(p) ? (UPSTREAMS[p].keyEnv[0] ?? null) : null;
}

/** The provider whose key a variable holds (`GOOGLE_API_KEY` → google), or undefined. */
export function providerOfKeyVariable(name: string): RealProvider | undefined {
  return (Object.keys(UPSTREAMS) as RealProvider[]).find((p) => UPSTREAMS[p].keyEnv.includes(name));
}
