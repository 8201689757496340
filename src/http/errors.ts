import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { AppError, isAppError } from '../errors.js';

/** The OpenAI error envelope. Only this module writes error bodies. */
export interface ErrorEnvelope {
  error: { message: string; type: string; param: string | null; code: string };
  [extra: string]: unknown;
}

/**
 * The longest message and param an error body carries. Messages quote request values cut short
 * (`quoted`); this is the backstop for any that does not, so an error is never larger than a page
 * of text however large the request that caused it.
 */
export const MAX_ERROR_MESSAGE_CHARS = 2000;
export const MAX_ERROR_PARAM_CHARS = 200;

function capped(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}… (${text.length - max} more characters)` : text;
}

export function envelope(err: AppError): ErrorEnvelope {
  const param = err.param === null ? null : capped(err.param, MAX_ERROR_PARAM_CHARS);
  return {
    ...err.details,
    error: { message: capped(err.message, MAX_ERROR_MESSAGE_CHARS), type: err.type, param, code: err.code },
  };
}

/** `/jetty/agent` → `jetty.agent`, `/messages/0/content` → `messages[0].content`. */
export function pointerToParam(prefix: string | null, pointer: string): string | null {
  const parts = pointer.split('/').filter(Boolean);
  let out = prefix ?? '';
  for (const p of parts) out += /^\d+$/.test(p) ? `[${p}]` : out ? `.${p}` : p;
  return out || prefix;
}

export function toAppError(err: unknown): AppError {
  if (isAppError(err)) return err;
  const fe = err as FastifyError & { validation?: unknown[]; validationContext?: string };
  if (hasZodFastifySchemaValidationErrors(fe)) {
    const first = fe.validation[0]!;
    const where = fe.validationContext === 'body' ? null : (fe.validationContext ?? null);
    const param = pointerToParam(where === 'querystring' ? null : where, first.instancePath);
    const more = fe.validation.length > 1 ? ` (and ${fe.validation.length - 1} more problem(s))` : '';
    return new AppError(`${param ?? 'body'}: ${first.message}${more}`, {
      status: 400,
      type: 'invalid_request_error',
      code: 'invalid_request',
      param,
    });
  }
  switch (fe.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new AppError(`The body is not valid JSON (${fe.message}). Send a JSON object.`, {
        status: 400,
        type: 'invalid_request_error',
        code: 'invalid_json',
      });
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError(
        'The request body is larger than this server accepts. Shorten the runbook or raise MAX_BODY_BYTES on the server.',
        { status: 413, type: 'invalid_request_error', code: 'body_too_large' },
      );
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AppError('Unsupported content type: send application/json.', {
        status: 415,
        type: 'invalid_request_error',
        code: 'unsupported_media_type',
      });
  }
  if (isRedisUnavailable(err)) {
    return new AppError(
      'The server cannot reach its Redis right now, so the request was not accepted. Retry in a few seconds.',
      {
        status: 503,
        type: 'service_unavailable',
        code: 'redis_unavailable',
        retryable: true,
        cause: err,
      },
    );
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new AppError(fe.message, {
      status: fe.statusCode,
      type: 'invalid_request_error',
      code: 'invalid_request',
    });
  }
  return new AppError('Internal server error. The request id in x-request-id finds it in the server log.', {
    status: 500,
    type: 'server_error',
    code: 'internal_error',
    cause: err,
  });
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: unknown, req: FastifyRequest, reply: FastifyReply) => {
    const appErr = toAppError(err);
    // Redis being down is logged once for the outage, not once per request with a stack.
    if (appErr.code === 'redis_unavailable')
      req.log.info({ code: appErr.code }, 'request refused: redis unreachable');
    else if (appErr.status >= 500) req.log.error({ err }, 'request failed');
    else req.log.info({ code: appErr.code, param: appErr.param }, appErr.message);
    // A stream already under way cannot change its status; its route ends it with an error chunk.
    if (reply.raw.headersSent) return;
    if (appErr.headers) void reply.headers(appErr.headers);
    void reply.code(appErr.status).header('content-type', 'application/json').send(envelope(appErr));
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(
      envelope(
        new AppError(
          `No route ${req.method} ${req.url.split('?')[0]}. The API is described at /openapi.json.`,
          {
            status: 404,
            type: 'not_found_error',
            code: 'route_not_found',
          },
        ),
      ),
    );
  });
}

/** ioredis gives up on a command after its retries, or refuses one on a closed connection. */
function isRedisUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return (
    err.name === 'MaxRetriesPerRequestError' ||
    /Connection is closed|Stream isn't writeable|ECONNREFUSED|ECONNRESET/.test(err.message)
  );
}
