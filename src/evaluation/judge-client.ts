/**
 * Calls a judge model through the worker's own provider gateway (its unix socket, with a token of
 * the run's), so the judge's key stays in the gateway and its usage is read there like every other
 * call. One non-streaming request in the provider's own wire protocol; the answer's text is all
 * the caller gets.
 */
import { request } from 'node:http';
import type { ProviderName } from '../runtimes/types.js';

/** An answer bigger than this is not a list of scores: it is refused, not read to its end. */
export const MAX_JUDGE_ANSWER_BYTES = 1024 * 1024;
/** Tokens the judge may answer with: a score and a sentence per criterion. */
export const JUDGE_MAX_OUTPUT_TOKENS = 2048;

export class JudgeCallError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
  ) {
    super(message);
    this.name = 'JudgeCallError';
  }
}

interface WireCall {
  path: string;
  headers: Record<string, string>;
  body: unknown;
  text: (json: unknown) => string | undefined;
}

function wireCall(
  provider: ProviderName,
  model: string,
  token: string,
  system: string,
  prompt: string,
): WireCall {
  switch (provider) {
    case 'openai':
    case 'openrouter':
      return {
        path: '/v1/chat/completions',
        headers: { authorization: `Bearer ${token}` },
        body: {
          model,
          max_completion_tokens: JUDGE_MAX_OUTPUT_TOKENS,
          messages: [
            { role: 'system', content: system },
            { role: 'user', content: prompt },
          ],
        },
        text: (j) => (j as { choices?: { message?: { content?: string } }[] }).choices?.[0]?.message?.content,
      };
    case 'google':
      return {
        path: `/v1beta/models/${encodeURIComponent(model)}:generateContent`,
        headers: { 'x-goog-api-key': token },
        body: {
          systemInstruction: { parts: [{ text: system }] },
          contents: [{ role: 'user', parts: [{ text: prompt }] }],
          generationConfig: { maxOutputTokens: JUDGE_MAX_OUTPUT_TOKENS },
        },
        text: (j) =>
          (
            j as { candidates?: { content?: { parts?: { text?: string }[] } }[] }
          ).candidates?.[0]?.content?.parts
            ?.map((p) => p.text ?? '')
            .join(''),
      };
    default:
      // anthropic, and the simulated provider (which plays the judge on the same protocol).
      return {
        path: '/v1/messages',
        headers: { 'x-api-key': token, 'anthropic-version': '2023-06-01' },
        body: {
          model,
          max_tokens: JUDGE_MAX_OUTPUT_TOKENS,
          system,
          messages: [{ role: 'user', content: prompt }],
        },
        text: (j) =>
          (j as { content?: { type?: string; text?: string }[] }).content
            ?.filter((b) => b.type === 'text')
            .map((b) => b.text ?? '')
            .join(''),
      };
  }
}

export interface JudgeCall {
  socketPath: string;
  token: string;
  provider: ProviderName;
  model: string;
  system: string;
  prompt: string;
  timeoutMs: number;
  signal?: AbortSignal;
}

/** The judge's answer text; throws JudgeCallError (with the provider's status) when there is none. */
export async function callJudge(call: JudgeCall): Promise<string> {
  const wire = wireCall(call.provider, call.model, call.token, call.system, call.prompt);
  const payload = Buffer.from(JSON.stringify(wire.body));
  const signals = [AbortSignal.timeout(call.timeoutMs), ...(call.signal ? [call.signal] : [])];
  const { status, body } = await post(
    call.socketPath,
    wire.path,
    { ...wire.headers, 'content-type': 'application/json' },
    payload,
    AbortSignal.any(signals),
  ).catch((err: Error) => {
    if (err.name === 'TimeoutError' || signals[0]!.aborted) {
      throw new JudgeCallError(
        `the judge did not answer within JUDGE_TIMEOUT_SEC (${Math.round(call.timeoutMs / 1000)} s)`,
        null,
      );
    }
    throw new JudgeCallError(`the judge could not be called: ${err.message}`, null);
  });
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new JudgeCallError(
      `the judge's provider answered HTTP ${status} with a body that is not JSON`,
      status,
    );
  }
  if (status < 200 || status >= 300) {
    const e = json as { error?: { message?: string } | string };
    const message = typeof e.error === 'string' ? e.error : (e.error?.message ?? `HTTP ${status}`);
    throw new JudgeCallError(
      `the judge's provider answered HTTP ${status}: ${String(message).slice(0, 300)}`,
      status,
    );
  }
  const text = wire.text(json);
  if (!text) throw new JudgeCallError('the judge answered with no text', status);
  return text;
}

function post(
  socketPath: string,
  path: string,
  headers: Record<string, string>,
  payload: Buffer,
  signal: AbortSignal,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        path,
        method: 'POST',
        headers: { ...headers, 'content-length': String(payload.length) },
        signal,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_JUDGE_ANSWER_BYTES) {
            req.destroy(new Error(`the answer is over ${MAX_JUDGE_ANSWER_BYTES} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}
