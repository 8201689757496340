/**
 * The OpenAI Chat Completions API of the simulated provider (`POST …/chat/completions`), in the
 * shape opencode (through @ai-sdk/openai-compatible) accepted in the feasibility study
 * (shared/reference/agent-clis.md, sections 5.3 and 7): `chat.completion.chunk` objects on `data:`
 * lines, `delta.tool_calls` for the shell tool, a last `choices: []` chunk carrying `usage` when
 * `stream_options.include_usage` is set, then `data: [DONE]`. Non-streaming requests get a
 * `chat.completion` object. Any Chat Completions client works: turn N is the request that carries
 * N `role: "tool"` messages.
 */
import { z } from 'zod';
import { encodeSse } from '../../events/sse.js';
import { openaiError } from './openai-errors.js';
import type { PlacedTurn, TurnPlan } from './plan.js';
import {
  estimateTokens,
  positionOf,
  scriptedFailMessage,
  splitForStreaming,
  type TurnPosition,
  totalPauseMs,
  turnAt,
  userKind,
} from './plan.js';
import type { Protocol, RouteHandler } from './protocol.js';
import { jsonResponse, readRequestAs, sseFrame, streamFrom } from './protocol.js';
import { sleep } from './sleep.js';
import type { OfferedTool } from './tools.js';
import { pickShellTool, sampleFromSchema } from './tools.js';

const DEFAULT_MODEL = 'simulated';
/** What a side call (no tools offered, e.g. opencode's session title) gets when it asks for no JSON. */
export const SIDE_CALL_TEXT = 'Simulated run';
/** Between two `say` steps of one turn: a Chat Completions message has one content string. */
const TEXT_SEPARATOR = '\n\n';

const ChatRequest = z.object({
  model: z.string().optional(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).passthrough().nullish(),
  messages: z.array(z.object({ role: z.string(), content: z.unknown().optional() }).passthrough()),
  tools: z
    .array(
      z
        .object({
          type: z.string().optional(),
          function: z.object({ name: z.string(), parameters: z.unknown().optional() }).passthrough(),
        })
        .passthrough(),
    )
    .nullish(),
  /** OpenRouter's extension: `usage: {include: true}` asks for the usage chunk too. */
  usage: z.object({ include: z.boolean().nullish() }).passthrough().nullish(),
  response_format: z.unknown().optional(),
});
type ChatRequest = z.infer<typeof ChatRequest>;

interface ToolCall {
  id: string;
  name: string;
  /** The arguments as the JSON text the API carries. */
  arguments: string;
}

/** A turn rendered for this request: text pieces and at most one tool call, with their pauses. */
interface Answer {
  id: string;
  model: string;
  created: number;
  parts: Array<{ pauseMs: number; text: string } | { pauseMs: number; call: ToolCall }>;
  tailPauseMs: number;
  finishReason: 'stop' | 'tool_calls';
  promptTokens: number;
  completionTokens: number;
  includeUsage: boolean;
}

export const openaiChatProtocol: Protocol = {
  name: 'openai-chat-completions',
  route(method, pathname): RouteHandler | undefined {
    if (method === 'POST' && pathname.endsWith('/chat/completions')) return handleChat;
    return undefined;
  },
  notFound(method, pathname) {
    return openaiError(404, `Simulated provider: nothing is served at ${method} ${pathname}.`);
  },
};

function readChatRequest(request: Request): Promise<ChatRequest | Response> {
  return readRequestAs(request, ChatRequest, 'Chat Completions', openaiError);
}

/** Which user message this request answers, and the `role: "tool"` results since it: the turn it is in. */
function positionOfChat(messages: ChatRequest['messages']): TurnPosition {
  return positionOf(
    messages.map((m) => {
      if (m.role === 'tool') return 'tool_result';
      if (m.role !== 'user') return 'other';
      const parts =
        typeof m.content === 'string' ? [{ text: m.content }] : Array.isArray(m.content) ? m.content : [];
      return userKind(parts.map((p) => (p as { text?: unknown } | null)?.text));
    }),
  );
}

function promptTokens(body: ChatRequest): number {
  return estimateTokens(JSON.stringify(body.messages));
}

async function handleChat(request: Request, plan: TurnPlan): Promise<Response> {
  const body = await readChatRequest(request);
  if (body instanceof Response) return body;
  const at = positionOfChat(body.messages);
  const toolResults = at.toolResults;
  const model = body.model ?? DEFAULT_MODEL;
  const tools: OfferedTool[] = (body.tools ?? []).map((t) => ({
    name: t.function.name,
    schema: t.function.parameters,
  }));

  // No tools: a side call (opencode's session title and the like). It is not a turn of the script.
  if (tools.length === 0) {
    const answer = sideAnswer(body, model, toolResults);
    return body.stream === true ? streamAnswer(answer, request.signal) : completionAnswer(answer);
  }

  const turn = turnAt(plan, at);
  const headers = { 'x-request-id': `req_sim_${turn.key}` };
  await sleep(turn.delayMs, request.signal);
  if (turn.failStatus !== null) {
    return openaiError(turn.failStatus, scriptedFailMessage(turn), headers);
  }
  const answer = renderTurn(turn, body, model, tools);
  if (answer instanceof Response) return answer;
  if (body.stream === true) return streamAnswer(answer, request.signal);
  await sleep(totalPauseMs(turn) - turn.delayMs, request.signal);
  return completionAnswer(answer);
}

function sideAnswer(body: ChatRequest, model: string, toolResults: number): Answer {
  const schema = jsonSchemaAskedFor(body.response_format);
  const text = schema === undefined ? SIDE_CALL_TEXT : JSON.stringify(sampleFromSchema(schema));
  return {
    id: `chatcmpl-sim-side-${toolResults}`,
    model,
    created: nowSeconds(),
    parts: [{ pauseMs: 0, text }],
    tailPauseMs: 0,
    finishReason: 'stop',
    promptTokens: promptTokens(body),
    completionTokens: estimateTokens(text),
    includeUsage: wantsUsage(body),
  };
}

/** `response_format: {type: "json_schema", json_schema: {schema}}`: the schema a side call wants. */
function jsonSchemaAskedFor(format: unknown): unknown {
  if (typeof format !== 'object' || format === null) return undefined;
  const f = format as { type?: unknown; json_schema?: { schema?: unknown } };
  return f.type === 'json_schema' ? f.json_schema?.schema : undefined;
}

function renderTurn(
  turn: PlacedTurn,
  body: ChatRequest,
  model: string,
  tools: OfferedTool[],
): Answer | Response {
  const parts: Answer['parts'] = [];
  let pending = 0;
  let finishReason: Answer['finishReason'] = 'stop';
  let produced = '';
  let hadText = false;
  for (const item of turn.items) {
    if (item.kind === 'pause') {
      pending += item.ms;
      continue;
    }
    if (item.kind === 'text') {
      const text = hadText ? `${TEXT_SEPARATOR}${item.text}` : item.text;
      hadText = true;
      parts.push({ pauseMs: pending, text });
      produced += text;
    } else {
      const shell = pickShellTool(tools);
      if (shell === null) {
        return openaiError(
          400,
          `Simulated provider: turn ${turn.index} runs a shell command, but the request offers no shell tool (offered: ${tools.map((t) => t.name).join(', ')}).`,
        );
      }
      const args = JSON.stringify(shell.input(item.command));
      parts.push({
        pauseMs: pending,
        call: { id: `call_sim_${turn.key}`, name: shell.name, arguments: args },
      });
      produced += args;
      finishReason = 'tool_calls';
    }
    pending = 0;
  }
  return {
    id: `chatcmpl-sim-${turn.key}`,
    model,
    created: nowSeconds(),
    parts,
    tailPauseMs: pending,
    finishReason,
    promptTokens: promptTokens(body),
    completionTokens: estimateTokens(produced),
    includeUsage: wantsUsage(body),
  };
}

/** The usage chunk is sent only when asked for, as the OpenAI API does. */
function wantsUsage(body: ChatRequest): boolean {
  return body.stream_options?.include_usage === true || body.usage?.include === true;
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function usage(answer: Answer) {
  return {
    prompt_tokens: answer.promptTokens,
    completion_tokens: answer.completionTokens,
    total_tokens: answer.promptTokens + answer.completionTokens,
  };
}

function completionAnswer(answer: Answer): Response {
  const text = answer.parts.map((p) => ('text' in p ? p.text : '')).join('');
  const calls = answer.parts.flatMap((p) =>
    'call' in p
      ? [{ id: p.call.id, type: 'function', function: { name: p.call.name, arguments: p.call.arguments } }]
      : [],
  );
  return jsonResponse(
    200,
    {
      id: answer.id,
      object: 'chat.completion',
      created: answer.created,
      model: answer.model,
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: text === '' ? null : text,
            ...(calls.length > 0 ? { tool_calls: calls } : {}),
            refusal: null,
          },
          logprobs: null,
          finish_reason: answer.finishReason,
        },
      ],
      usage: usage(answer),
    },
    { 'x-request-id': answer.id },
  );
}

function streamAnswer(answer: Answer, signal: AbortSignal): Response {
  const cancelled = new AbortController();
  const stream = streamFrom(chunks(answer, AbortSignal.any([signal, cancelled.signal])), cancelled);
  return new Response(stream, {
    status: 200,
    headers: {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-request-id': answer.id,
    },
  });
}

const DONE = new TextEncoder().encode(encodeSse({ data: '[DONE]' }));

/**
 * The chunk stream: content deltas (the first chunk carries `role`), the tool call (name and id
 * first, then its arguments), a chunk with `finish_reason`, the usage chunk, `[DONE]`.
 */
async function* chunks(answer: Answer, signal: AbortSignal): AsyncGenerator<Uint8Array, void, undefined> {
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
    sseFrame(null, {
      id: answer.id,
      object: 'chat.completion.chunk',
      created: answer.created,
      model: answer.model,
      choices,
      ...extra,
    });
  let first = true;
  for (const part of answer.parts) {
    await sleep(part.pauseMs, signal);
    if ('text' in part) {
      for (const text of splitForStreaming(part.text)) {
        const delta = first ? { role: 'assistant', content: text } : { content: text };
        first = false;
        yield chunk([{ index: 0, delta, finish_reason: null }]);
      }
    } else {
      const head = {
        index: 0,
        id: part.call.id,
        type: 'function',
        function: { name: part.call.name, arguments: '' },
      };
      const delta = first ? { role: 'assistant', content: null, tool_calls: [head] } : { tool_calls: [head] };
      first = false;
      yield chunk([{ index: 0, delta, finish_reason: null }]);
      yield chunk([
        {
          index: 0,
          delta: { tool_calls: [{ index: 0, function: { arguments: part.call.arguments } }] },
          finish_reason: null,
        },
      ]);
    }
  }
  await sleep(answer.tailPauseMs, signal);
  yield chunk([
    { index: 0, delta: first ? { role: 'assistant', content: '' } : {}, finish_reason: answer.finishReason },
  ]);
  if (answer.includeUsage) yield chunk([], { usage: usage(answer) });
  yield DONE;
}
