import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { UsageData } from '../../src/events/types.js';
import { modelCallOf, usageReaderForPath } from '../../src/gateway/usage.js';
import { bedrockEvent } from '../support/aws-event-stream.js';

// Every protocol's usage reader, on responses shaped as each provider documents them. Where each
// fixture comes from (URL, verbatim or assembled from the reference): test/fixtures/usage/SOURCES.md.
const dir = path.join(import.meta.dirname, '..', 'fixtures', 'usage');
const bytes = (name: string): Buffer => readFileSync(path.join(dir, name));
const json = (name: string): unknown => JSON.parse(bytes(name).toString('utf8'));

/** Feeds the body in pieces of `step` bytes (usage must survive any chunk boundary). */
function read(
  pathname: string,
  contentType: string,
  body: Uint8Array,
  step: number,
  headers?: Headers,
): UsageData | null {
  const r = usageReaderForPath(pathname, contentType, headers);
  if (!r) return null;
  for (let i = 0; i < body.length; i += step) r.push(body.subarray(i, i + step));
  return r.finish();
}

/** The same reading, whole and in 1-, 7- and 64-byte pieces: all four must agree. */
function readAll(
  pathname: string,
  contentType: string,
  body: Uint8Array,
  headers?: Headers,
): UsageData | null {
  const whole = read(pathname, contentType, body, body.length || 1, headers);
  for (const step of [1, 7, 64]) expect(read(pathname, contentType, body, step, headers)).toEqual(whole);
  return whole;
}

const usage = (u: Partial<UsageData>): UsageData => ({
  input_tokens: 0,
  output_tokens: 0,
  cache_read_tokens: 0,
  cache_write_tokens: 0,
  source: 'gateway',
  ...u,
});

describe('Anthropic Messages', () => {
  it('JSON body (API reference example): input apart from cache reads and writes', () => {
    expect(readAll('/v1/messages', 'application/json', bytes('anthropic-messages.json'))).toEqual(
      usage({
        input_tokens: 2095,
        output_tokens: 503,
        cache_read_tokens: 2051,
        cache_write_tokens: 2051,
        model: 'claude-opus-4-6',
      }),
    );
  });

  it('SSE (streaming guide example): input from message_start, output from message_delta', () => {
    expect(readAll('/v1/messages?beta=true', 'text/event-stream', bytes('anthropic-messages.sse'))).toEqual(
      usage({ input_tokens: 25, output_tokens: 15, model: 'claude-3-5-sonnet-20241022' }),
    );
  });
});

describe('OpenAI Chat Completions', () => {
  it('JSON body (API reference example)', () => {
    expect(readAll('/v1/chat/completions', 'application/json', bytes('openai-chat.json'))).toEqual(
      usage({ input_tokens: 19, output_tokens: 10, model: 'gpt-4.1-2025-04-14' }),
    );
  });

  it('SSE with stream_options.include_usage: the last chunk (choices: []) carries the usage', () => {
    expect(
      readAll('/api/v1/chat/completions', 'text/event-stream; charset=utf-8', bytes('openai-chat.sse')),
    ).toEqual(usage({ input_tokens: 19, output_tokens: 10, model: 'gpt-4o-mini' }));
  });
});

describe('OpenAI Responses', () => {
  it('JSON body (API reference example)', () => {
    expect(readAll('/v1/responses', 'application/json', bytes('openai-responses.json'))).toEqual(
      usage({ input_tokens: 36, output_tokens: 87, model: 'gpt-4.1-2025-04-14' }),
    );
  });

  it('SSE (API reference streaming example): response.completed carries the usage', () => {
    expect(readAll('/v1/responses', 'text/event-stream', bytes('openai-responses.sse'))).toEqual(
      usage({ input_tokens: 37, output_tokens: 11, model: 'gpt-4.1-2025-04-14' }),
    );
  });
});

describe('Gemini', () => {
  it('generateContent: cached tokens split out of the prompt, thoughts counted as output', () => {
    expect(
      readAll(
        '/v1beta/models/gemini-2.5-flash:generateContent',
        'application/json; charset=UTF-8',
        bytes('gemini-generate-content.json'),
      ),
    ).toEqual(
      usage({ input_tokens: 284, cache_read_tokens: 1024, output_tokens: 90, model: 'gemini-2.5-flash' }),
    );
  });

  it('streamGenerateContent?alt=sse: the last chunk’s usageMetadata counts', () => {
    expect(
      readAll(
        '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse',
        'text/event-stream',
        bytes('gemini-stream.sse'),
      ),
    ).toEqual(usage({ input_tokens: 8, output_tokens: 543, model: 'gemini-2.5-flash' }));
  });

  it('streamGenerateContent without alt=sse: a JSON array of the same chunks gives the same', () => {
    expect(
      readAll(
        '/v1beta/models/gemini-2.5-flash:streamGenerateContent',
        'application/json; charset=UTF-8',
        bytes('gemini-stream.json'),
      ),
    ).toEqual(usage({ input_tokens: 8, output_tokens: 543, model: 'gemini-2.5-flash' }));
  });
});

describe('Bedrock', () => {
  const claude = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';
  const base = `/model/${encodeURIComponent(claude)}`;

  it('knows each operation and the model from the path', () => {
    expect(modelCallOf(`${base}/invoke`)).toEqual({ protocol: 'bedrock-invoke', model: claude });
    expect(modelCallOf(`${base}/invoke-with-response-stream`)?.protocol).toBe('bedrock-invoke-stream');
    expect(modelCallOf(`${base}/converse`)?.protocol).toBe('bedrock-converse');
    expect(modelCallOf(`${base}/converse-stream`)?.protocol).toBe('bedrock-converse-stream');
    expect(modelCallOf(`${base}/count-tokens`)).toBeNull();
  });

  it('InvokeModel with Claude: the Anthropic body’s usage', () => {
    expect(readAll(`${base}/invoke`, 'application/json', bytes('bedrock-invoke.json'))).toEqual(
      usage({ input_tokens: 12, output_tokens: 12, model: 'claude-sonnet-4-5-20250929' }),
    );
  });

  it('InvokeModel with a model whose body has no usage: the token count headers', () => {
    const headers = new Headers({
      'x-amzn-bedrock-input-token-count': '5',
      'x-amzn-bedrock-output-token-count': '31',
    });
    expect(
      readAll(
        '/model/amazon.titan-text-express-v1/invoke',
        'application/json',
        bytes('bedrock-invoke-titan.json'),
        headers,
      ),
    ).toEqual(usage({ input_tokens: 5, output_tokens: 31, model: 'amazon.titan-text-express-v1' }));
  });

  it('invoke-with-response-stream: base64 chunks of Anthropic stream events in event-stream frames', () => {
    const events = json('bedrock-invoke-stream.events.json') as unknown[];
    const body = Buffer.concat(
      events.map((e) =>
        bedrockEvent('chunk', { bytes: Buffer.from(JSON.stringify(e)).toString('base64'), p: 'abcdefgh' }),
      ),
    );
    expect(
      readAll(`${base}/invoke-with-response-stream`, 'application/vnd.amazon.eventstream', body),
    ).toEqual(usage({ input_tokens: 14, output_tokens: 12, model: 'claude-sonnet-4-5-20250929' }));
  });

  it('invoke-with-response-stream of a model without Anthropic usage: amazon-bedrock-invocationMetrics', () => {
    const last = {
      outputText: 'Hello!',
      index: 0,
      totalOutputTextTokenCount: 3,
      completionReason: 'FINISH',
      inputTextTokenCount: 4,
      'amazon-bedrock-invocationMetrics': {
        inputTokenCount: 4,
        outputTokenCount: 3,
        invocationLatency: 200,
        firstByteLatency: 150,
      },
    };
    const body = bedrockEvent('chunk', { bytes: Buffer.from(JSON.stringify(last)).toString('base64') });
    expect(
      readAll(
        '/model/amazon.titan-text-express-v1/invoke-with-response-stream',
        'application/vnd.amazon.eventstream',
        body,
      ),
    ).toEqual(usage({ input_tokens: 4, output_tokens: 3, model: 'amazon.titan-text-express-v1' }));
  });

  it('Converse: usage of the body; input apart from cache writes', () => {
    expect(readAll(`${base}/converse`, 'application/json', bytes('bedrock-converse.json'))).toEqual(
      usage({ input_tokens: 21, output_tokens: 138, cache_write_tokens: 2163, model: claude }),
    );
  });

  it('ConverseStream: the metadata event of the event stream', () => {
    const events = json('bedrock-converse-stream.events.json') as { eventType: string; payload: unknown }[];
    const body = Buffer.concat(events.map((e) => bedrockEvent(e.eventType, e.payload)));
    expect(readAll(`${base}/converse-stream`, 'application/vnd.amazon.eventstream', body)).toEqual(
      usage({ input_tokens: 21, output_tokens: 9, cache_read_tokens: 1500, model: claude }),
    );
  });

  it('an exception event or a non-event-stream error body gives no usage', () => {
    const exception = Buffer.concat([
      bedrockEvent('messageStart', { role: 'assistant' }),
      Buffer.from(
        JSON.stringify({ message: 'Model timeout' }), // an error body, not framed
      ),
    ]);
    expect(readAll(`${base}/converse-stream`, 'application/vnd.amazon.eventstream', exception)).toBeNull();
    expect(
      readAll(`${base}/converse`, 'application/json', Buffer.from('{"message":"Too many tokens"}')),
    ).toBeNull();
  });
});
