/**
 * The Gemini API (generativelanguage `v1beta`, and Vertex AI express mode `v1beta1/publishers/
 * google`) of the simulated provider, in the shape gemini-cli 0.61.0 accepted in the feasibility
 * study (shared/reference/agent-clis.md, sections 4.4 and 7):
 *
 *   POST …/models/{model}:streamGenerateContent?alt=sse  `data:` lines, one GenerateContentResponse
 *                                                       each; `finishReason` on the last
 *   POST …/models/{model}:generateContent                one GenerateContentResponse (the CLI's
 *                                                       router and other side calls)
 *   POST …/models/{model}:countTokens                    {totalTokens}
 *
 * Events are framed by the shared SSE encoder (`data: …\n\n`); the real API ends each with
 * `\r\n\r\n`, and the Gen AI SDK the CLI uses accepts either (its reader splits on `\n\n`, `\r\r`
 * or `\r\n\r\n`).
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

export const GEMINI_MODELS = ['gemini-2.5-pro', 'gemini-2.5-flash', 'gemini-2.5-flash-lite'] as const;

/** What a side call (no tools offered) gets when it does not ask for JSON. */
const SIDE_CALL_TEXT = 'Simulated run';

/**
 * `…/models/{model}:{method}`; the model may carry a `publishers/x/` prefix before it. Any model
 * name is served, `/` and `:` included (`anthropic/claude-sonnet-4.6`, a Bedrock `…-v1:0`): a
 * runbook moved to gemini-cli keeps its model on the simulated provider.
 */
const MODEL_METHOD = /\/models\/(.+):(streamGenerateContent|generateContent|countTokens)$/;
const MODEL_LIST = /\/(v1|v1beta|v1alpha|v1beta1)(\/publishers\/[^/]+)?\/models$/;
const MODEL_ONE = /\/(v1|v1beta|v1alpha|v1beta1)(\/publishers\/[^/]+)?\/models\/(.+)$/;

const Part = z.looseObject({
  text: z.string().optional(),
  functionCall: z.unknown().optional(),
  functionResponse: z.unknown().optional(),
});
const Content = z.looseObject({ role: z.string().optional(), parts: z.array(Part).default([]) });
const FunctionDeclaration = z.looseObject({
  name: z.string(),
  parameters: z.unknown().optional(),
  parametersJsonSchema: z.unknown().optional(),
});
const GenerateContentRequest = z.looseObject({
  contents: z.array(Content),
  systemInstruction: z.unknown().optional(),
  tools: z.array(z.looseObject({ functionDeclarations: z.array(FunctionDeclaration).optional() })).optional(),
  generationConfig: z
    .looseObject({
      responseMimeType: z.string().optional(),
      responseJsonSchema: z.unknown().optional(),
      responseSchema: z.unknown().optional(),
    })
    .optional(),
});
type GenerateContentRequest = z.infer<typeof GenerateContentRequest>;

type GeminiPart = { text: string } | { functionCall: { name: string; args: Record<string, unknown> } };

/** A turn rendered for this request: the parts, with the pause that comes before each. */
interface Answer {
  responseId: string;
  model: string;
  parts: Array<{ pauseMs: number; part: GeminiPart }>;
  /** A pause after the last part, before the response ends. */
  tailPauseMs: number;
  promptTokens: number;
  outputTokens: number;
}

export const geminiProtocol: Protocol = {
  name: 'gemini',
  route(method, pathname): RouteHandler | undefined {
    const call = MODEL_METHOD.exec(pathname);
    if (method === 'POST' && call !== null) {
      const model = decodeURIComponent(call[1]!);
      if (call[2] === 'countTokens') return (request) => handleCountTokens(request);
      const stream = call[2] === 'streamGenerateContent';
      return (request, plan) => handleGenerate(request, plan, model, stream);
    }
    if (method === 'GET' && MODEL_LIST.test(pathname)) return async () => listModels();
    const one = MODEL_ONE.exec(pathname);
    if (method === 'GET' && one !== null) {
      return async () => jsonResponse(200, modelEntry(decodeURIComponent(one[3]!)));
    }
    return undefined;
  },
  notFound(method, pathname) {
    return geminiError(404, `Simulated provider: nothing is served at ${method} ${pathname}.`);
  },
};

/** The canonical status name the Google APIs put beside each HTTP status. */
export function geminiErrorStatus(status: number): string {
  switch (status) {
    case 400:
      return 'INVALID_ARGUMENT';
    case 401:
      return 'UNAUTHENTICATED';
    case 403:
      return 'PERMISSION_DENIED';
    case 404:
      return 'NOT_FOUND';
    case 409:
      return 'ABORTED';
    case 429:
      return 'RESOURCE_EXHAUSTED';
    case 499:
      return 'CANCELLED';
    case 501:
      return 'NOT_IMPLEMENTED';
    case 503:
      return 'UNAVAILABLE';
    case 504:
      return 'DEADLINE_EXCEEDED';
    default:
      return status < 500 ? 'FAILED_PRECONDITION' : 'INTERNAL';
  }
}

/** `{"error": {code, message, status}}`, the Google API error body. */
function geminiError(status: number, message: string): Response {
  return jsonResponse(status, { error: { code: status, message, status: geminiErrorStatus(status) } });
}

function readRequest(request: Request): Promise<GenerateContentRequest | Response> {
  return readRequestAs(request, GenerateContentRequest, 'GenerateContent', geminiError);
}

/** Which user message this request answers, and the function responses since it: the turn it is in. */
export function positionOfContents(contents: GenerateContentRequest['contents']): TurnPosition {
  return positionOf(contentKinds(contents));
}

function* contentKinds(contents: GenerateContentRequest['contents']): Generator<MessageKind> {
  for (const content of contents) {
    if (content.role === 'model') continue;
    const responses = content.parts.filter((p) => p.functionResponse !== undefined).length;
    if (responses > 0) for (let i = 0; i < responses; i++) yield 'tool_result';
    else yield userKind(content.parts.map((p) => p.text));
  }
}

function offeredTools(body: GenerateContentRequest): OfferedTool[] {
  return (body.tools ?? []).flatMap((t) =>
    (t.functionDeclarations ?? []).map((d) => ({
      name: d.name,
      schema: d.parametersJsonSchema ?? toJsonSchema(d.parameters),
    })),
  );
}

function promptTokens(body: GenerateContentRequest): number {
  return estimateTokens(
    JSON.stringify({ systemInstruction: body.systemInstruction, contents: body.contents }),
  );
}

async function handleCountTokens(request: Request): Promise<Response> {
  const body = await readRequest(request);
  if (body instanceof Response) return body;
  return jsonResponse(200, { totalTokens: promptTokens(body) });
}

async function handleGenerate(
  request: Request,
  plan: TurnPlan,
  model: string,
  stream: boolean,
): Promise<Response> {
  const body = await readRequest(request);
  if (body instanceof Response) return body;
  const at = positionOfContents(body.contents);
  const responses = at.toolResults;
  const tools = offeredTools(body);

  // No tools: a side call (the model router, a loop check, a summary). Not a turn of the script.
  if (tools.length === 0) {
    const answer = sideAnswer(body, model, responses);
    return stream ? streamAnswer(answer, request.signal) : oneAnswer(answer);
  }

  const turn = turnAt(plan, at);
  await sleep(turn.delayMs, request.signal);
  if (turn.failStatus !== null) {
    return geminiError(turn.failStatus, scriptedFailMessage(turn));
  }
  const answer = renderTurn(turn, body, model, tools);
  if (answer instanceof Response) return answer;
  if (stream) return streamAnswer(answer, request.signal);
  await sleep(totalPauseMs(turn) - turn.delayMs, request.signal);
  return oneAnswer(answer);
}

function sideAnswer(body: GenerateContentRequest, model: string, responses: number): Answer {
  const config = body.generationConfig;
  // The CLI's router sends Gemini-style upper-case types even in `responseJsonSchema`.
  const schema = toJsonSchema(config?.responseJsonSchema ?? config?.responseSchema);
  const wantsJson = config?.responseMimeType === 'application/json';
  const text =
    schema !== undefined
      ? JSON.stringify(sampleFromSchema(fractionsAtZero(schema)))
      : wantsJson
        ? '{}'
        : SIDE_CALL_TEXT;
  return {
    responseId: `resp_sim_side_${responses}`,
    model,
    parts: [{ pauseMs: 0, part: { text } }],
    tailPauseMs: 0,
    promptTokens: promptTokens(body),
    outputTokens: estimateTokens(text),
  };
}

function renderTurn(
  turn: PlacedTurn,
  body: GenerateContentRequest,
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
    if (item.kind === 'text') {
      if (item.text === '') continue;
      // Text parts of one response are joined by the client: keep two `say` steps apart.
      const text = produced === '' ? item.text : `\n\n${item.text}`;
      parts.push({ pauseMs: pending, part: { text } });
      produced += text;
    } else {
      const shell = pickShellTool(tools);
      if (shell === null) {
        return geminiError(
          400,
          `Simulated provider: turn ${turn.index} runs a shell command, but the request offers no shell tool (offered: ${tools.map((t) => t.name).join(', ')}).`,
        );
      }
      const args = shell.input(item.command);
      parts.push({ pauseMs: pending, part: { functionCall: { name: shell.name, args } } });
      produced += JSON.stringify(args);
    }
    pending = 0;
  }
  return {
    responseId: `resp_sim_${turn.key}`,
    model,
    parts,
    tailPauseMs: pending,
    promptTokens: promptTokens(body),
    outputTokens: estimateTokens(produced),
  };
}

function usageMetadata(answer: Answer) {
  return {
    promptTokenCount: answer.promptTokens,
    candidatesTokenCount: answer.outputTokens,
    totalTokenCount: answer.promptTokens + answer.outputTokens,
  };
}

/** One GenerateContentResponse; `finishReason` only on the last one of a stream. */
function response(answer: Answer, parts: GeminiPart[], last: boolean) {
  return {
    candidates: [
      {
        content: { role: 'model', parts },
        ...(last ? { finishReason: 'STOP' } : {}),
        index: 0,
      },
    ],
    usageMetadata: usageMetadata(answer),
    modelVersion: answer.model,
    responseId: answer.responseId,
  };
}

function oneAnswer(answer: Answer): Response {
  return jsonResponse(
    200,
    response(
      answer,
      answer.parts.map((p) => p.part),
      true,
    ),
  );
}

function streamAnswer(answer: Answer, signal: AbortSignal): Response {
  const cancelled = new AbortController();
  const stream = streamFrom(responseEvents(answer, AbortSignal.any([signal, cancelled.signal])), cancelled);
  return new Response(stream, {
    status: 200,
    headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' },
  });
}

/** Text goes out in small pieces, a function call whole; the last chunk carries `finishReason`. */
async function* responseEvents(
  answer: Answer,
  signal: AbortSignal,
): AsyncGenerator<Uint8Array, void, undefined> {
  const chunks: Array<{ pauseMs: number; part: GeminiPart }> = [];
  for (const { pauseMs, part } of answer.parts) {
    if ('text' in part) {
      splitForStreaming(part.text).forEach((text, i) => {
        chunks.push({ pauseMs: i === 0 ? pauseMs : 0, part: { text } });
      });
    } else {
      chunks.push({ pauseMs, part });
    }
  }
  if (chunks.length === 0) chunks.push({ pauseMs: 0, part: { text: '' } });
  for (const [i, chunk] of chunks.entries()) {
    await sleep(chunk.pauseMs, signal);
    const last = i === chunks.length - 1;
    if (last) await sleep(answer.tailPauseMs, signal);
    yield sseFrame(null, response(answer, [chunk.part], last));
  }
}

/**
 * Gemini's own Schema (OpenAPI subset: `type: "OBJECT"`) as JSON Schema, so the shared sampler can
 * read it. Lower-case JSON Schema passes through unchanged.
 */
function toJsonSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(toJsonSchema);
  if (typeof schema !== 'object' || schema === null) return schema;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'type' && typeof value === 'string') out.type = value.toLowerCase();
    else if (key === 'properties' && typeof value === 'object' && value !== null) {
      out.properties = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toJsonSchema(v)]));
    } else if (key === 'items' || key === 'anyOf') out[key] = toJsonSchema(value);
    else out[key] = value;
  }
  return out;
}

/**
 * The CLI's side calls ask for integer scores (the router's complexity_score, where 0 reads as no
 * answer: the shared sampler gives at least 1) and for fractions (the loop check's
 * unproductive_state_confidence, where anything high stops the run as a loop). A fraction without
 * a minimum is answered 0: "nothing to report".
 */
function fractionsAtZero(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(fractionsAtZero);
  if (typeof schema !== 'object' || schema === null) return schema;
  const copy: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) {
    copy[key] = key === 'const' || key === 'enum' ? value : fractionsAtZero(value);
  }
  if (copy.type === 'number' && typeof copy.minimum !== 'number') copy.maximum = 0;
  return copy;
}

function listModels(): Response {
  return jsonResponse(200, { models: GEMINI_MODELS.map(modelEntry) });
}

function modelEntry(id: string) {
  const name = id.startsWith('models/') ? id : `models/${id}`;
  return {
    name,
    displayName: `${name.slice('models/'.length)} (simulated)`,
    supportedGenerationMethods: ['generateContent', 'streamGenerateContent', 'countTokens'],
  };
}
