/**
 * The OpenAI Responses API of the simulated provider (`POST …/responses`), in the shape the codex
 * CLI accepted in the feasibility study (shared/reference/agent-clis.md, sections 3.4 and 7): SSE
 * where every event has an `event:` line naming its type and a `data:` line whose `type` says the
 * same; a shell step becomes a `function_call` item of the offered shell tool (codex's
 * `exec_command {cmd}`), text becomes a `message` item streamed as `output_text` deltas, and the
 * stream ends with `response.completed` carrying usage. A non-streaming request gets the same
 * response object as JSON.
 */
import { z } from 'zod';
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
/** What a side call (no tools offered) gets when it does not ask for JSON. */
const SIDE_CALL_TEXT = 'Simulated run';

const Tool = z
  .object({
    type: z.string().optional(),
    name: z.string().optional(),
    parameters: z.unknown().optional(),
    // A namespace groups tools (MCP servers); its members are offered tools too.
    tools: z.array(z.unknown()).optional(),
  })
  .passthrough();

const ResponsesRequest = z.object({
  model: z.string().optional(),
  stream: z.boolean().optional(),
  instructions: z.unknown().optional(),
  input: z.union([z.string(), z.array(z.unknown())]).optional(),
  tools: z.array(Tool).optional(),
  text: z.unknown().optional(),
});
type ResponsesRequest = z.infer<typeof ResponsesRequest>;

type OutputItem =
  | { kind: 'message'; id: string; text: string }
  | { kind: 'function_call'; id: string; callId: string; name: string; arguments: string };

/** A turn rendered for this request: output items, with the pauses that come before each. */
interface Answer {
  id: string;
  requestId: string;
  model: string;
  parts: Array<{ pauseMs: number; item: OutputItem }>;
  /** A pause after the last item, before the response completes. */
  tailPauseMs: number;
  inputTokens: number;
  outputTokens: number;
}

export const openaiResponsesProtocol: Protocol = {
  name: 'openai-responses',
  route(method, pathname): RouteHandler | undefined {
    if (method === 'POST' && /\/responses$/.test(pathname)) return handleResponses;
    return undefined;
  },
  notFound(method, pathname) {
    return openaiError(404, `Simulated provider: nothing is served at ${method} ${pathname}.`);
  },
};

function readResponsesRequest(request: Request): Promise<ResponsesRequest | Response> {
  return readRequestAs(request, ResponsesRequest, 'Responses', openaiError);
}

/**
 * Tool outputs already in the input: the turn this request is in. Every kind of tool output counts
 * (`function_call_output`, `custom_tool_call_output`, `tool_search_output`, …): each answers one
 * call of an earlier turn.
 */
export function countToolOutputs(input: ResponsesRequest['input']): number {
  return positionOfInput(input).toolResults;
}

/** Which user message this request answers, and the tool outputs since it: the turn it is in. */
export function positionOfInput(input: ResponsesRequest['input']): TurnPosition {
  if (!Array.isArray(input)) return { message: 0, toolResults: 0 };
  return positionOf(
    input.map((item) => {
      const o = typeof item === 'object' && item !== null ? (item as Record<string, unknown>) : {};
      if (typeof o.type === 'string' && o.type.endsWith('_output')) return 'tool_result';
      if (o.role !== 'user' || (o.type !== undefined && o.type !== 'message')) return 'other';
      const parts =
        typeof o.content === 'string' ? [{ text: o.content }] : Array.isArray(o.content) ? o.content : [];
      return userKind(parts.map((p) => (p as { text?: unknown } | null)?.text));
    }),
  );
}

/** Function tools by name and parameter schema, namespaces flattened; hosted tools have no name. */
function namedTools(tools: readonly z.infer<typeof Tool>[]): OfferedTool[] {
  const out: OfferedTool[] = [];
  for (const tool of tools) {
    if (tool.type === 'namespace') {
      out.push(...namedTools(z.array(Tool).catch([]).parse(tool.tools)));
    } else if (tool.name !== undefined) {
      out.push({ name: tool.name, schema: tool.parameters });
    }
  }
  return out;
}

/**
 * Every tool the request offers: `tools`, and those codex's "code mode" sends as an
 * `additional_tools` input item instead (a JavaScript `exec` tool and namespaces, no shell tool).
 */
function offeredTools(body: ResponsesRequest): OfferedTool[] {
  const tools = namedTools(body.tools ?? []);
  for (const item of Array.isArray(body.input) ? body.input : []) {
    const extra = z.object({ type: z.literal('additional_tools'), tools: z.array(Tool) }).safeParse(item);
    if (extra.success) tools.push(...namedTools(extra.data.tools));
  }
  return tools;
}

function inputTokens(body: ResponsesRequest): number {
  return estimateTokens(JSON.stringify({ instructions: body.instructions, input: body.input }));
}

async function handleResponses(request: Request, plan: TurnPlan): Promise<Response> {
  const body = await readResponsesRequest(request);
  if (body instanceof Response) return body;
  const at = positionOfInput(body.input);
  const toolOutputs = at.toolResults;
  const model = body.model ?? DEFAULT_MODEL;

  // No tools at all: a side call (a title, a summary). It is not a turn of the script.
  const tools = offeredTools(body);
  if (tools.length === 0 && (body.tools ?? []).length === 0) {
    const answer = sideAnswer(body, model, toolOutputs);
    return body.stream === true ? streamAnswer(answer, request.signal) : responseAnswer(answer);
  }

  const turn = turnAt(plan, at);
  const headers = { 'x-request-id': `req_sim_${turn.key}` };
  await sleep(turn.delayMs, request.signal);
  if (turn.failStatus !== null) {
    const scripted = scriptedFailMessage(turn);
    // OpenAI's own words first where a client reads them: codex shows a model_not_found 404 by its
    // message alone (no status), and recognises the model by this sentence.
    const message =
      turn.failStatus === 404
        ? `The model \`${model}\` does not exist or you do not have access to it. ${scripted}`
        : scripted;
    return openaiError(turn.failStatus, message, headers);
  }
  const answer = renderTurn(turn, body, model, tools);
  if (answer instanceof Response) return answer;
  if (body.stream === true) return streamAnswer(answer, request.signal);
  await sleep(totalPauseMs(turn) - turn.delayMs, request.signal);
  return responseAnswer(answer);
}

function sideAnswer(body: ResponsesRequest, model: string, toolOutputs: number): Answer {
  const schema = jsonSchemaAskedFor(body);
  const text = schema === undefined ? SIDE_CALL_TEXT : JSON.stringify(sampleFromSchema(schema));
  return {
    id: `resp_sim_side_${toolOutputs}`,
    requestId: `req_sim_side_${toolOutputs}`,
    model,
    parts: [{ pauseMs: 0, item: { kind: 'message', id: `msg_sim_side_${toolOutputs}`, text } }],
    tailPauseMs: 0,
    inputTokens: inputTokens(body),
    outputTokens: estimateTokens(text),
  };
}

/** The schema of a structured-output request (`text.format` of type json_schema). */
function jsonSchemaAskedFor(body: ResponsesRequest): unknown {
  const format = (body.text as { format?: unknown } | undefined)?.format;
  if (typeof format !== 'object' || format === null) return undefined;
  const f = format as { type?: unknown; schema?: unknown };
  return f.type === 'json_schema' ? f.schema : undefined;
}

function renderTurn(
  turn: PlacedTurn,
  body: ResponsesRequest,
  model: string,
  tools: OfferedTool[],
): Answer | Response {
  const parts: Answer['parts'] = [];
  let pending = 0;
  let produced = '';
  for (const item of turn.items) {
    if (item.kind === 'pause') {
      pending += item.ms;
      continue;
    }
    const n = parts.length;
    if (item.kind === 'text') {
      parts.push({
        pauseMs: pending,
        item: { kind: 'message', id: `msg_sim_${turn.key}_${n}`, text: item.text },
      });
      produced += item.text;
    } else {
      const shell = pickShellTool(tools);
      if (shell === null) {
        return openaiError(
          400,
          `Simulated provider: turn ${turn.index} runs a shell command, but the request offers no shell tool (offered: ${tools.map((t) => t.name).join(', ') || 'none'}).`,
        );
      }
      const args = JSON.stringify(shell.input(item.command));
      parts.push({
        pauseMs: pending,
        item: {
          kind: 'function_call',
          id: `fc_sim_${turn.key}`,
          callId: `call_sim_${turn.key}`,
          name: shell.name,
          arguments: args,
        },
      });
      produced += args;
    }
    pending = 0;
  }
  return {
    id: `resp_sim_${turn.key}`,
    requestId: `req_sim_${turn.key}`,
    model,
    parts,
    tailPauseMs: pending,
    inputTokens: inputTokens(body),
    outputTokens: estimateTokens(produced),
  };
}

function usage(answer: Answer) {
  return {
    input_tokens: answer.inputTokens,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: answer.outputTokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: answer.inputTokens + answer.outputTokens,
  };
}

/** An output item in its final (completed) form, as `response.output_item.done` and `output[]` carry it. */
function doneItem(item: OutputItem) {
  return item.kind === 'message'
    ? {
        type: 'message',
        id: item.id,
        status: 'completed',
        role: 'assistant',
        content: [{ type: 'output_text', text: item.text, annotations: [] }],
      }
    : {
        type: 'function_call',
        id: item.id,
        call_id: item.callId,
        name: item.name,
        arguments: item.arguments,
        status: 'completed',
      };
}

function responseObject(answer: Answer, createdAt: number, done: boolean) {
  return {
    id: answer.id,
    object: 'response',
    created_at: createdAt,
    status: done ? 'completed' : 'in_progress',
    model: answer.model,
    output: done ? answer.parts.map((p) => doneItem(p.item)) : [],
    usage: done ? usage(answer) : null,
  };
}

function responseAnswer(answer: Answer): Response {
  return jsonResponse(200, responseObject(answer, nowSeconds(), true), { 'x-request-id': answer.requestId });
}

function streamAnswer(answer: Answer, signal: AbortSignal): Response {
  const cancelled = new AbortController();
  const stream = streamFrom(responseEvents(answer, AbortSignal.any([signal, cancelled.signal])), cancelled);
  return new Response(stream, {
    status: 200,
    headers: {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-request-id': answer.requestId,
    },
  });
}

/**
 * The Responses stream: created, in_progress, then per output item added → (text part and deltas,
 * or argument deltas) → done, then completed with the usage. Every event carries its
 * sequence_number, and its `event:` line repeats the payload's `type`.
 */
async function* responseEvents(
  answer: Answer,
  signal: AbortSignal,
): AsyncGenerator<Uint8Array, void, undefined> {
  let seq = 0;
  const frame = (type: string, fields: Record<string, unknown>) =>
    sseFrame(type, { type, ...fields, sequence_number: seq++ });
  const createdAt = nowSeconds();
  yield frame('response.created', { response: responseObject(answer, createdAt, false) });
  yield frame('response.in_progress', { response: responseObject(answer, createdAt, false) });
  for (const [index, { pauseMs, item }] of answer.parts.entries()) {
    await sleep(pauseMs, signal);
    const at = { output_index: index };
    if (item.kind === 'message') {
      yield frame('response.output_item.added', {
        ...at,
        item: { type: 'message', id: item.id, status: 'in_progress', role: 'assistant', content: [] },
      });
      const part = { item_id: item.id, ...at, content_index: 0 };
      yield frame('response.content_part.added', {
        ...part,
        part: { type: 'output_text', text: '', annotations: [] },
      });
      for (const delta of splitForStreaming(item.text)) {
        yield frame('response.output_text.delta', { ...part, delta, logprobs: [] });
      }
      yield frame('response.output_text.done', { ...part, text: item.text, logprobs: [] });
      yield frame('response.content_part.done', {
        ...part,
        part: { type: 'output_text', text: item.text, annotations: [] },
      });
    } else {
      yield frame('response.output_item.added', {
        ...at,
        item: {
          type: 'function_call',
          id: item.id,
          call_id: item.callId,
          name: item.name,
          arguments: '',
          status: 'in_progress',
        },
      });
      // The whole arguments in one delta: what the codex CLI was seen to accept.
      yield frame('response.function_call_arguments.delta', {
        item_id: item.id,
        ...at,
        delta: item.arguments,
      });
      yield frame('response.function_call_arguments.done', {
        item_id: item.id,
        ...at,
        arguments: item.arguments,
      });
    }
    yield frame('response.output_item.done', { ...at, item: doneItem(item) });
  }
  await sleep(answer.tailPauseMs, signal);
  yield frame('response.completed', { response: responseObject(answer, createdAt, true) });
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
