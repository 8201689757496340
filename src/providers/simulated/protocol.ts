/**
 * What each wire protocol module of the simulated provider offers. A protocol reads a request into
 * "which turn, which tools", and renders the shared turn plan in its own bytes.
 */

import type { z } from 'zod';
import { encodeSse } from '../../events/sse.js';
import type { TurnPlan } from './plan.js';

export type RouteHandler = (request: Request, plan: TurnPlan) => Promise<Response>;

export interface Protocol {
  readonly name: string;
  /** The handler for this method and path, or undefined when they are not this protocol's. */
  route(method: string, pathname: string): RouteHandler | undefined;
  /** A 404 in the protocol's own error shape. */
  notFound(method: string, pathname: string): Response;
}

const encoder = new TextEncoder();

/** One server-sent event as the providers frame theirs (`event:` then one `data:` line), via the one SSE encoder. */
export function sseFrame(event: string | null, data: unknown): Uint8Array {
  return encoder.encode(encodeSse({ ...(event === null ? {} : { event }), data: JSON.stringify(data) }));
}

/**
 * A byte stream pulled from an async generator of frames, one frame per read. Cancelling the stream
 * (the client went away) aborts `abort`, which ends any pause the generator is in.
 */
export function streamFrom(
  frames: AsyncGenerator<Uint8Array, void, undefined>,
  abort: AbortController,
): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const next = await frames.next();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      } catch (err) {
        controller.error(err);
      }
    },
    cancel(reason) {
      abort.abort(reason);
    },
  });
}

export function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', ...headers },
  });
}

export async function readJson(
  request: Request,
): Promise<{ ok: true; value: unknown } | { ok: false; message: string }> {
  const text = await request.text();
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, message: 'The request body is not valid JSON.' };
  }
}

/**
 * Reads a request body as JSON and checks it against a protocol's schema. Anything else is a 400
 * in the protocol's own error shape (`fail`), naming where the body went wrong.
 */
export async function readRequestAs<T>(
  request: Request,
  schema: z.ZodType<T>,
  api: string,
  fail: (status: number, message: string) => Response,
): Promise<T | Response> {
  const json = await readJson(request);
  if (!json.ok) return fail(400, `Simulated provider: ${json.message}`);
  const parsed = schema.safeParse(json.value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue === undefined || issue.path.length === 0 ? 'body' : issue.path.join('.');
    return fail(
      400,
      `Simulated provider: invalid ${api} request at ${where}: ${issue?.message ?? 'invalid'}.`,
    );
  }
  return parsed.data;
}
