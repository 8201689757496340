/**
 * The Anthropic Messages API of the simulated provider, byte for byte in the shape the claude CLI
 * accepted in the feasibility study (shared/reference/agent-clis.md, sections 2 and 7).
 */
import { z } from 'zod';
import type { PlacedTurn, TurnPlan } from './plan.js';
import {
  estimateTokens,
  type MessageKind,
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

export const ANTHROPIC_MODELS = ['claude-opus-4-8', 'claude-sonnet-4-6', 'claude-haiku-4-5'] as const;

const DEFAULT_MODEL = 'simulated';
/** What a side call (no tools offered, e.g. a session title) gets when it does not ask for JSON. */
const SIDE_CALL_TEXT = 'Simulated run';

const MessagesRequest = z.object({
  model: z.string().optional(),
  stream: z.boolean().optional(),
  system: z.unknown().optional(),
  messages: z.array(z.object({ role: z.string(), content: z.unknown() })),
  tools: z.array(z.object({ name: z.string(), input_schema: z.unknown().optional() })).optional(),
  output_config: z.unknown().optional(),
  output_format: z.unknown().optional(),
});
type MessagesRequest = z.infer<typeof MessagesRequest>;

type ContentBlock =
  | { type: 'text'; text: string }
  | { type: 'tool_use'; id: string; name: string; input: Record<string, unknown> };

/** A turn rendered for this request: content blocks, with the pauses that come before each. */
interface Answer {
  id: string;
  requestId: string;
  model: string;
  parts: Array<{ pauseMs: number; block: ContentBlock }>;
  /** A pause after the last block, before the message ends. */
  tailPauseMs: number;
  stopReason: 'end_turn' | 'tool_use';
  inputTokens: number;
  outputTokens: number;
}

export const anthropicProtocol: Protocol = {
  name: 'anthropic-messages',
  route(method, pathname): RouteHandler | undefined {
    if (method === 'POST' && pathname.endsWith('/v1/messages')) return handleMessages;
    if (method === 'POST' && pathname.endsWith('/v1/messages/count_tokens')) return handleCountTokens;
    if (method === 'GET' && pathname.endsWith('/v1/models')) return async () => listModels();
    const one = /\/v1\/models\/([^/]+)$/.exec(pathname);
    if (method === 'GET' && one !== null)
      return async () => jsonResponse(200, modelEntry(decodeURIComponent(one[1]!)));
    return undefined;
  },
  notFound(method, pathname) {
    return anthropicError(404, `Simulated provider: nothing is served at ${method} ${pathname}.`);
  },
};

/** The error type the Anthropic API uses for each status. */
export function anthropicErrorType(status: number): string {
  switch (status) {
    case 400:
      return 'invalid_request_error';
    case 401:
      return 'authentication_error';
    case 402:
      return 'billing_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 413:
      return 'request_too_large';
    case 429:
      return 'rate_limit_error';
    case 504:
      return 'timeout_error';
    case 529:
      return 'overloaded_error';
    default:
      return status < 500 ? 'invalid_request_error' : 'api_error';
  }
}

function anthropicError(status: number, message: string, headers: Record<string, string> = {}): Response {
  return jsonResponse(
    status,
    { type: 'error', error: { type: anthropicErrorType(status), message } },
    headers,
  );
}

function readMessagesRequest(request: Request): Promise<MessagesRequest | Response> {
  return readRequestAs(request, MessagesRequest, 'Messages', anthropicError);
}

/** Which user message this request answers, and the tool results since it: the turn it is in. */
export function positionOfMessages(messages: MessagesRequest['messages']): TurnPosition {
  return positionOf(messageKinds(messages));
}

function* messageKinds(messages: MessagesRequest['messages']): Generator<MessageKind> {
  for (const message of messages) {
    if (message.role !== 'user') continue;
    if (!Array.isArray(message.content)) {
      yield userKind([message.content]);
      continue;
    }
    const blocks = message.content.filter(
      (b): b is { type?: unknown; text?: unknown } => typeof b === 'object' && b !== null,
    );
    const results = blocks.filter((b) => b.type === 'tool_result').length;
    if (results > 0) for (let i = 0; i < results; i++) yield 'tool_result';
    else yield userKind(blocks.filter((b) => b.type === 'text').map((b) => b.text));
  }
}

function inputTokens(body: MessagesRequest): number {
  return estimateTokens(JSON.stringify({ system: body.system, messages: body.messages }));
}

async function handleCountTokens(request: Request): Promise<Response> {
  const body = await readMessagesRequest(request);
  if (body instanceof Response) return body;
  return jsonResponse(200, { input_tokens: inputTokens(body) });
}

async function handleMessages(request: Request, plan: TurnPlan): Promise<Response> {
  const body = await readMessagesRequest(request);
  if (body instanceof Response) return body;
  const at = positionOfMessages(body.messages);
  const toolResults = at.toolResults;
  const model = body.model ?? DEFAULT_MODEL;
  const tools: OfferedTool[] = (body.tools ?? []).map((t) => ({ name: t.name, schema: t.input_schema }));

  // No tools: a side call (session title and the like). It is not a turn of the script.
  if (tools.length === 0) {
    const answer = sideAnswer(body, model, toolResults);
    return body.stream === true ? streamAnswer(answer, request.signal) : messageAnswer(answer);
  }

  const turn = turnAt(plan, at);
  const headers = { 'request-id': `req_sim_${turn.key}` };
  await sleep(turn.delayMs, request.signal);
  if (turn.failStatus !== null) {
    return anthropicError(turn.failStatus, scriptedFailMessage(turn), headers);
  }
  const answer = renderTurn(turn, body, model, tools);
  if (answer instanceof Response) return answer;
  if (body.stream === true) return streamAnswer(answer, request.signal);
  await sleep(totalPauseMs(turn) - turn.delayMs, request.signal);
  return messageAnswer(answer);
}

function sideAnswer(body: MessagesRequest, model: string, toolResults: number): Answer {
  const schema = jsonSchemaAskedFor(body);
  const text = schema === undefined ? SIDE_CALL_TEXT : JSON.stringify(sampleFromSchema(schema));
  return {
    id: `msg_sim_side_${toolResults}`,
    requestId: `req_sim_side_${toolResults}`,
    model,
    parts: [{ pauseMs: 0, block: { type: 'text', text } }],
    tailPauseMs: 0,
    stopReason: 'end_turn',
    inputTokens: inputTokens(body),
    outputTokens: estimateTokens(text),
  };
}

/** The schema of a structured-output request (`output_config.format`, or the older `output_format`). */
function jsonSchemaAskedFor(body: MessagesRequest): unknown {
  const config = body.output_config as { format?: unknown } | undefined;
  for (const format of [config?.format, body.output_format]) {
    if (typeof format !== 'object' || format === null) continue;
    const f = format as { type?: unknown; schema?: unknown };
    if (f.type === 'json_schema') return f.schema;
  }
  return undefined;
}

function renderTurn(
  turn: PlacedTurn,
  body: MessagesRequest,
  model: string,
  tools: OfferedTool[],
): Answer | Response {
  const parts: Answer['parts'] = [];
  let pending = 0;
  let stopReason: Answer['stopReason'] = 'end_turn';
  let produced = '';
  for (const item of turn.items) {
    if (item.kind === 'pause') {
      pending += item.ms;
      continue;
    }
    if (item.kind === 'text') {
      parts.push({ pauseMs: pending, block: { type: 'text', text: item.text } });
      produced += item.text;
    } else {
      const shell = pickShellTool(tools);
      if (shell === null) {
        return anthropicError(
          400,
          `Simulated provider: turn ${turn.index} runs a shell command, but the request offers no shell tool (offered: ${tools.map((t) => t.name).join(', ')}).`,
        );
      }
      const input = shell.input(item.command);
      parts.push({
        pauseMs: pending,
        block: { type: 'tool_use', id: `toolu_sim_${turn.key}`, name: shell.name, input },
      });
      produced += JSON.stringify(input);
      stopReason = 'tool_use';
    }
    pending = 0;
  }
  return {
    id: `msg_sim_${turn.key}`,
    requestId: `req_sim_${turn.key}`,
    model,
    parts,
    tailPauseMs: pending,
    stopReason,
    inputTokens: inputTokens(body),
    outputTokens: estimateTokens(produced),
  };
}

function usage(inputTokens: number, outputTokens: number) {
  return {
    input_tokens: inputTokens,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    output_tokens: outputTokens,
  };
}

function messageAnswer(answer: Answer): Response {
  return jsonResponse(
    200,
    {
      id: answer.id,
      type: 'message',
      role: 'assistant',
      model: answer.model,
      content: answer.parts.map((p) => p.block),
      stop_reason: answer.stopReason,
      stop_sequence: null,
      usage: usage(answer.inputTokens, answer.outputTokens),
    },
    { 'request-id': answer.requestId },
  );
}

function streamAnswer(answer: Answer, signal: AbortSignal): Response {
  const cancelled = new AbortController();
  const stream = streamFrom(messageEvents(answer, AbortSignal.any([signal, cancelled.signal])), cancelled);
  return new Response(stream, {
    status: 200,
    headers: {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'request-id': answer.requestId,
    },
  });
}

/** The Messages stream: message_start, each content block (start, deltas, stop), message_delta, message_stop. */
async function* messageEvents(
  answer: Answer,
  signal: AbortSignal,
): AsyncGenerator<Uint8Array, void, undefined> {
  yield sseFrame('message_start', {
    type: 'message_start',
    message: {
      id: answer.id,
      type: 'message',
      role: 'assistant',
      model: answer.model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: usage(answer.inputTokens, 1),
    },
  });
  for (const [index, { pauseMs, block }] of answer.parts.entries()) {
    await sleep(pauseMs, signal);
    if (block.type === 'text') {
      yield sseFrame('content_block_start', {
        type: 'content_block_start',
        index,
        content_block: { type: 'text', text: '' },
      });
      for (const text of splitForStreaming(block.text)) {
        yield sseFrame('content_block_delta', {
          type: 'content_block_delta',
          index,
          delta: { type: 'text_delta', text },
        });
      }
    } else {
      yield sseFrame('content_block_start', {
        type: 'content_block_start',
        index,
        content_block: { type: 'tool_use', id: block.id, name: block.name, input: {} },
      });
      // The whole input in one delta: what the claude CLI was seen to accept.
      yield sseFrame('content_block_delta', {
        type: 'content_block_delta',
        index,
        delta: { type: 'input_json_delta', partial_json: JSON.stringify(block.input) },
      });
    }
    yield sseFrame('content_block_stop', { type: 'content_block_stop', index });
  }
  await sleep(answer.tailPauseMs, signal);
  yield sseFrame('message_delta', {
    type: 'message_delta',
    delta: { stop_reason: answer.stopReason, stop_sequence: null },
    usage: { output_tokens: answer.outputTokens },
  });
  yield sseFrame('message_stop', { type: 'message_stop' });
}

function listModels(): Response {
  const data = ANTHROPIC_MODELS.map(modelEntry);
  return jsonResponse(200, {
    data,
    has_more: false,
    first_id: data[0]?.id ?? null,
    last_id: data.at(-1)?.id ?? null,
  });
}

function modelEntry(id: string) {
  return { type: 'model', id, display_name: `${id} (simulated)`, created_at: '2026-01-01T00:00:00Z' };
}
