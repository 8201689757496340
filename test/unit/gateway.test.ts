import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UsageData } from '../../src/events/types.js';
import { ProviderGateway } from '../../src/gateway/gateway.js';
import { usageReaderForPath } from '../../src/gateway/usage.js';

const enc = new TextEncoder();
function read(pathname: string, contentType: string, body: string): UsageData | null {
  const r = usageReaderForPath(pathname, contentType);
  if (!r) return null;
  // Split anywhere: usage must survive chunk boundaries.
  for (let i = 0; i < body.length; i += 7) r.push(enc.encode(body.slice(i, i + 7)));
  return r.finish();
}

describe('usage read from each wire protocol', () => {
  it('Anthropic Messages, streamed', () => {
    const sse =
      'event: message_start\ndata: {"type":"message_start","message":{"model":"claude-x","usage":{"input_tokens":100,"cache_read_input_tokens":20,"cache_creation_input_tokens":5,"output_tokens":1}}}\n\n' +
      'event: message_delta\ndata: {"type":"message_delta","delta":{},"usage":{"output_tokens":42}}\n\n';
    expect(read('/v1/messages?beta=true', 'text/event-stream', sse)).toEqual({
      input_tokens: 100,
      output_tokens: 42,
      cache_read_tokens: 20,
      cache_write_tokens: 5,
      source: 'gateway',
      model: 'claude-x',
    });
  });

  it('OpenAI Responses: cached tokens are split out of input', () => {
    const sse =
      'event: response.completed\ndata: {"type":"response.completed","response":{"model":"gpt-5.5","usage":{"input_tokens":300,"input_tokens_details":{"cached_tokens":100},"output_tokens":17}}}\n\n';
    expect(read('/v1/responses', 'text/event-stream', sse)).toMatchObject({
      input_tokens: 200,
      cache_read_tokens: 100,
      output_tokens: 17,
      model: 'gpt-5.5',
    });
  });

  it('OpenAI Chat Completions: the usage chunk, and the JSON form', () => {
    const sse =
      'data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: {"model":"m","choices":[],"usage":{"prompt_tokens":50,"completion_tokens":9,"prompt_tokens_details":{"cached_tokens":10}}}\n\ndata: [DONE]\n\n';
    expect(read('/v1/chat/completions', 'text/event-stream', sse)).toMatchObject({
      input_tokens: 40,
      cache_read_tokens: 10,
      output_tokens: 9,
    });
    expect(
      read('/v1/chat/completions', 'application/json', '{"usage":{"prompt_tokens":5,"completion_tokens":2}}'),
    ).toMatchObject({ input_tokens: 5, output_tokens: 2 });
  });

  it('Gemini: the last usageMetadata of the stream counts, thoughts are output', () => {
    const sse =
      'data: {"candidates":[],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":1}}\r\n\r\n' +
      'data: {"candidates":[],"usageMetadata":{"promptTokenCount":123,"candidatesTokenCount":17,"thoughtsTokenCount":3},"modelVersion":"gemini-x"}\r\n\r\n';
    expect(read('/v1beta/models/gemini-x:streamGenerateContent', 'text/event-stream', sse)).toMatchObject({
      input_tokens: 123,
      output_tokens: 20,
      model: 'gemini-x',
    });
  });

  it('calls without usage and error bodies give none', () => {
    expect(usageReaderForPath('/v1/messages/count_tokens', 'application/json')).toBeNull();
    expect(usageReaderForPath('/v1/models', 'application/json')).toBeNull();
    expect(
      read('/v1/messages', 'application/json', '{"type":"error","error":{"type":"authentication_error"}}'),
    ).toBeNull();
  });
});

describe('ProviderGateway on a unix socket', () => {
  let dir = '';
  let gw: ProviderGateway;
  const seen: Request[] = [];
  const usage: UsageData[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'gw-'));
    gw = new ProviderGateway(path.join(dir, 'gateway.sock'));
    await gw.start();
    gw.register('tok_abcdefgh1234', {
      runId: 'r1',
      provider: 'openai',
      baseUrl: 'https://upstream.invalid/base',
      auth: { header: 'authorization', value: 'Bearer sk-real' },
      upstream: async (req) => {
        seen.push(req);
        return new Response('data: {"usage":{"prompt_tokens":3,"completion_tokens":4}}\n\ndata: [DONE]\n\n', {
          headers: { 'content-type': 'text/event-stream' },
        });
      },
      onUsage: (u) => usage.push(u),
    });
  });
  afterAll(async () => {
    await gw.stop();
    await rm(dir, { recursive: true, force: true });
  });

  function call(urlPath: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        { socketPath: path.join(dir, 'gateway.sock'), path: urlPath, method: 'POST', headers },
        (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.end('{"stream":true}');
    });
  }

  it('swaps the run token for the real key, forwards the path, streams back, and reads usage', async () => {
    const res = await call('/v1/chat/completions', {
      authorization: 'Bearer tok_abcdefgh1234',
      'content-type': 'application/json',
    });
    expect(res.status).toBe(200);
    expect(res.body).toContain('[DONE]');
    const req = seen.at(-1)!;
    expect(req.url).toBe('https://upstream.invalid/base/v1/chat/completions');
    expect(req.headers.get('authorization')).toBe('Bearer sk-real');
    expect(await req.text()).toBe('{"stream":true}');
    expect(usage.at(-1)).toMatchObject({ input_tokens: 3, output_tokens: 4, source: 'gateway' });
  });

  it('takes the token from the path for CLIs that send no key header', async () => {
    const res = await call('/_t/tok_abcdefgh1234/model/x/invoke', {});
    expect(res.status).toBe(200);
    expect(seen.at(-1)!.url).toBe('https://upstream.invalid/base/model/x/invoke');
    expect(seen.at(-1)!.headers.get('authorization')).toBe('Bearer sk-real');
  });

  it('adds retry-after-ms to failed answers for runtimes that ask for it', async () => {
    gw.register('tok_retry12345678', {
      runId: 'r2',
      provider: 'openai',
      baseUrl: 'https://upstream.invalid',
      auth: null,
      retryAfterMs: 200,
      upstream: async () => new Response('{"error":{"message":"busy"}}', { status: 500 }),
      onUsage: () => undefined,
    });
    const res = await new Promise<{ status: number; header: string | undefined }>((resolve, reject) => {
      const req = httpRequest(
        {
          socketPath: path.join(dir, 'gateway.sock'),
          path: '/v1/chat/completions',
          method: 'POST',
          headers: { authorization: 'Bearer tok_retry12345678' },
        },
        (r) => {
          r.resume();
          r.on('end', () =>
            resolve({ status: r.statusCode ?? 0, header: r.headers['retry-after-ms'] as string | undefined }),
          );
        },
      );
      req.on('error', reject);
      req.end('{}');
    });
    expect(res).toEqual({ status: 500, header: '200' });
  });

  it('refuses an unknown token without forwarding anything', async () => {
    const before = seen.length;
    const res = await call('/v1/chat/completions', { 'x-api-key': 'sk-guess' });
    expect(res.status).toBe(401);
    expect(res.body).toContain('Unknown or expired run token');
    expect(seen.length).toBe(before);
  });
});
