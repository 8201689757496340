/**
 * One error family for the whole server. Only the HTTP error handler turns these into bodies
 * (always the OpenAI envelope), and the worker uses `retryable` to decide whether BullMQ may retry.
 */
export type ErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'conflict_error'
  | 'rate_limit_error'
  | 'server_error'
  | 'service_unavailable';

export interface AppErrorOptions {
  status: number;
  type: ErrorType;
  code: string;
  param?: string | null;
  retryable?: boolean;
  cause?: unknown;
  /** Extra top-level fields for the error body beside `error` (e.g. `jetty_metadata`). */
  details?: Record<string, unknown>;
  /** Response headers that go with the error (e.g. `retry-after` on a 429). */
  headers?: Record<string, string>;
}

export class AppError extends Error {
  readonly status: number;
  readonly type: ErrorType;
  readonly code: string;
  readonly param: string | null;
  readonly retryable: boolean;
  readonly details: Record<string, unknown> | undefined;
  readonly headers: Record<string, string> | undefined;

  constructor(message: string, opts: AppErrorOptions) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'AppError';
    this.status = opts.status;
    this.type = opts.type;
    this.code = opts.code;
    this.param = opts.param ?? null;
    this.retryable = opts.retryable ?? false;
    this.details = opts.details;
    this.headers = opts.headers;
  }
}

/** 400: the request is malformed or names something that does not exist. `param` names the field. */
export function badRequest(message: string, param: string | null, code = 'invalid_request'): AppError {
  return new AppError(message, { status: 400, type: 'invalid_request_error', code, param });
}

/** JSON nested past MAX_JSON_DEPTH, in a body or in a JSON form field (`what`). */
export function jsonTooDeep(what: string, maxDepth: number, param: string | null = null): AppError {
  return badRequest(
    `${what} nests objects and arrays more than ${maxDepth} levels deep, the server's limit (MAX_JSON_DEPTH). Flatten it.`,
    param,
    'json_too_deep',
  );
}

/** 422: valid JSON that cannot run (e.g. a runbook whose template variables are not all given). */
export function unprocessable(
  message: string,
  param: string | null,
  code = 'unprocessable_runbook',
): AppError {
  return new AppError(message, { status: 422, type: 'invalid_request_error', code, param });
}

export function notFound(message: string, code = 'not_found'): AppError {
  return new AppError(message, { status: 404, type: 'not_found_error', code });
}

export function conflict(message: string, code = 'conflict'): AppError {
  return new AppError(message, { status: 409, type: 'conflict_error', code });
}

export function unavailable(message: string, code = 'dependency_unavailable', cause?: unknown): AppError {
  return new AppError(message, { status: 503, type: 'service_unavailable', code, retryable: true, cause });
}

/** An infrastructure hiccup (Docker, Redis, network) inside the worker: BullMQ may retry it. */
export function infraError(message: string, code: string, cause?: unknown): AppError {
  return new AppError(message, { status: 500, type: 'server_error', code, retryable: true, cause });
}

/**
 * A value from a request, quoted in a message and cut short: a 300 KB field must not come back in
 * its own error (nor flood a log line). Strings keep their text; anything else is shown as JSON.
 */
export function quoted(value: unknown, max = 60): string {
  if (typeof value === 'string')
    return JSON.stringify(value.length > max ? `${value.slice(0, max)}…` : value);
  const json = JSON.stringify(value) ?? String(value);
  return json.length > max ? `${json.slice(0, max)}…` : json;
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}
