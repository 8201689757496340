import type { WireProtocol } from './usage.js';

/**
 * The gateway's own refusal of a model call (the run's budget is spent), written as the provider
 * of that protocol writes a client error, so the CLI reports it as one. 400 is the status every
 * CLI here treats as final (none retries it: their SDKs retry 408, 409, 429 and 5xx, claude-code
 * also 401), and `x-should-retry: false` tells the Anthropic and OpenAI SDKs so in words.
 */
export interface Refusal {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const STATUS = 400;

export function refusalFor(protocol: WireProtocol, message: string): Refusal {
  const headers = { 'content-type': 'application/json', 'x-should-retry': 'false' };
  switch (protocol) {
    case 'anthropic-messages':
      return {
        status: STATUS,
        headers,
        body: JSON.stringify({ type: 'error', error: { type: 'invalid_request_error', message } }),
      };
    case 'openai-responses':
    case 'openai-chat':
      return {
        status: STATUS,
        headers,
        body: JSON.stringify({
          error: { message, type: 'invalid_request_error', param: null, code: 'budget_exceeded' },
        }),
      };
    case 'gemini':
      // Google's status for "the request cannot be served in the system's current state".
      return {
        status: STATUS,
        headers,
        body: JSON.stringify({ error: { code: STATUS, message, status: 'FAILED_PRECONDITION' } }),
      };
    case 'bedrock-invoke':
    case 'bedrock-invoke-stream':
    case 'bedrock-converse':
    case 'bedrock-converse-stream':
      // Bedrock's 400, named in x-amzn-ErrorType, {"message"} as body. ValidationException, not
      // ServiceQuotaExceededException, which Hermes takes for throttling and retries; not a 403
      // AccessDeniedException either, on which claude-code refreshes its AWS credentials and retries.
      // The AWS SDKs retry throttling and 5xx errors only.
      return {
        status: STATUS,
        headers: { ...headers, 'x-amzn-errortype': 'ValidationException' },
        body: JSON.stringify({ message }),
      };
  }
}
