import type { ServerResponse } from 'node:http';
import { badRequest } from '../errors.js';
import type { UsageData } from '../events/types.js';
import { usageReaderForPath } from '../gateway/usage.js';
import { estimateCost } from '../providers/prices.js';
import { createSimulatedProvider } from '../providers/simulated/index.js';
import { keyEnvOf, type RealProvider, UPSTREAMS } from '../providers/upstreams.js';
import type { ProviderName } from '../runtimes/types.js';
import { Redactor } from '../tenancy/redact.js';
import type { CollectionContext } from './preflight.js';

/**
 * Plain LLM passthrough: a Chat Completions request without a `jetty` block goes to the provider
 * its model names, with the collection's key (or the server's), and the answer streams back as the provider sent it.
 * Each call is recorded as a one-step run under the task `_chat`.
 */
export interface PassthroughTarget {
  provider: ProviderName;
  /** Path of the provider's OpenAI-compatible Chat Completions endpoint under its base URL. */
  path: string;
  model: string;
}

/**
 * Which provider serves a model: `vendor/model` is an OpenRouter id; `gpt-*`, `o1`–`o4` are
 * OpenAI's; `claude-*` Anthropic's (its OpenAI-compatible endpoint); `gemini-*` Google's (likewise);
 * `simulated` (or `simulated/…`) the built-in simulated provider.
 */
export function passthroughTarget(model: string): PassthroughTarget | null {
  if (model === 'simulated' || model.startsWith('simulated/')) {
    return { provider: 'simulated', path: '/v1/chat/completions', model };
  }
  if (model.includes('/')) return { provider: 'openrouter', path: '/v1/chat/completions', model };
  if (/^(gpt-|chatgpt-|o[1-9](-|$))/.test(model))
    return { provider: 'openai', path: '/v1/chat/completions', model };
  if (/^claude-/.test(model)) return { provider: 'anthropic', path: '/v1/chat/completions', model };
  if (/^gemini-/.test(model)) return { provider: 'google', path: '/v1beta/openai/chat/completions', model };
  return null;
}

export function planPassthrough(model: string | undefined, ctx: CollectionContext): PassthroughTarget {
  if (!model) {
    throw badRequest(
      'A request without a `jetty` block is passed to the provider its `model` names, and this one names none. Set `model` (e.g. "gpt-5.5", "claude-sonnet-4-6", "anthropic/claude-sonnet-4.6"), or add `"jetty": {"runbook": true}` to run a runbook.',
      'model',
    );
  }
  const target = passthroughTarget(model);
  if (!target) {
    throw badRequest(
      `Cannot tell which provider serves "${model}". Use a provider's own id (gpt-…, o3…, claude-…, gemini-…) or an OpenRouter id (vendor/model), or add a \`jetty\` block to run a runbook.`,
      'model',
      'model_unroutable',
    );
  }
  if (!ctx.providers.has(target.provider)) {
    throw badRequest(
      target.provider === 'simulated'
        ? 'The simulated provider is switched off on this server.'
        : `No key for the provider "${target.provider}" that serves "${model}": set ${keyEnvOf(target.provider)} in the environment of collection ${ctx.collection} (PATCH /api/v1/collections/${ctx.collection}/environment).`,
      'model',
      'provider_key_missing',
    );
  }
  return target;
}

/** How much of a provider's error answer the run record keeps. */
const ERROR_BODY_BYTES = 2000;

export interface PassthroughResult {
  status: number;
  usage: UsageData | null;
  /** The assistant's text, as far as it could be read from the answer. */
  text: string;
  error: string | null;
}

/**
 * Sends the request on and copies the answer to `res` byte for byte (hop-by-hop headers aside),
 * reading usage and the assistant's text on the way.
 */
export async function forward(
  target: PassthroughTarget,
  body: unknown,
  res: ServerResponse,
  upstream: { key: string | undefined; url: (provider: RealProvider) => string },
  signal: AbortSignal,
): Promise<PassthroughResult> {
  const payload = JSON.stringify(body);
  let send: (r: Request) => Promise<Response>;
  let url: string;
  const headers = new Headers({ 'content-type': 'application/json' });
  if (target.provider === 'simulated') {
    const sim = createSimulatedProvider({
      runbook: '',
      requiredOutputs: [],
      resultsDir: '/app/results',
      workdir: '/app',
    });
    send = (r) => sim.fetch(r);
    url = `http://simulated.invalid${target.path}`;
  } else {
    const provider = target.provider as RealProvider;
    const auth = UPSTREAMS[provider].auth(upstream.key ?? '');
    headers.set(auth.header, auth.value);
    send = (r) => fetch(r);
    url = `${upstream.url(provider)}${target.path}`;
  }
  const answer = await send(new Request(url, { method: 'POST', headers, body: payload, signal }));
  const contentType = answer.headers.get('content-type') ?? 'application/json';
  const out: Record<string, string> = { 'content-type': contentType };
  const requestId = answer.headers.get('x-request-id') ?? answer.headers.get('request-id');
  if (requestId) out['x-upstream-request-id'] = requestId;
  res.writeHead(answer.status, out);
  const usage = answer.ok ? usageReaderForPath(target.path, contentType) : null;
  const text = new TextCollector(contentType.includes('text/event-stream'));
  const raw: Uint8Array[] = [];
  if (answer.body) {
    for await (const chunk of answer.body as unknown as AsyncIterable<Uint8Array>) {
      usage?.push(chunk);
      text.push(chunk);
      if (!answer.ok && raw.length < 64) raw.push(chunk);
      if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
    }
  }
  res.end();
  const used = usage?.finish() ?? null;
  const cost = used ? estimateCost(used) : undefined;
  return {
    status: answer.status,
    usage: used && cost !== undefined ? { ...used, cost_usd: cost, cost_estimated: true } : used,
    text: text.finish(),
    // An upstream (or a proxy before it) may repeat the key: redact, then cut, as everywhere.
    error: answer.ok
      ? null
      : new Redactor(upstream.key ? { provider_key: upstream.key } : {}).cut(
          Buffer.concat(raw).toString('utf8'),
          ERROR_BODY_BYTES,
        ).text,
  };
}

/** Collects `choices[0].delta.content` (streamed) or `choices[0].message.content` (JSON). */
class TextCollector {
  private readonly decoder = new TextDecoder();
  private buf = '';
  private text = '';
  constructor(private readonly sse: boolean) {}

  push(chunk: Uint8Array): void {
    this.buf += this.decoder.decode(chunk, { stream: true });
    if (!this.sse) return;
    let nl = this.buf.indexOf('\n');
    while (nl >= 0) {
      this.line(this.buf.slice(0, nl).trim());
      this.buf = this.buf.slice(nl + 1);
      nl = this.buf.indexOf('\n');
    }
  }

  finish(): string {
    if (this.sse) {
      this.line(this.buf.trim());
      return this.text;
    }
    try {
      const body = JSON.parse(this.buf) as { choices?: Array<{ message?: { content?: unknown } }> };
      const content = body.choices?.[0]?.message?.content;
      return typeof content === 'string' ? content : '';
    } catch {
      return '';
    }
  }

  private line(l: string): void {
    if (!l.startsWith('data:')) return;
    try {
      const chunk = JSON.parse(l.slice(5).trim()) as { choices?: Array<{ delta?: { content?: unknown } }> };
      const piece = chunk.choices?.[0]?.delta?.content;
      if (typeof piece === 'string') this.text += piece;
    } catch {
      // [DONE] and the like.
    }
  }
}
