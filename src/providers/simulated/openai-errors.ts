/**
 * The OpenAI API's error bodies, as the simulated Responses and Chat Completions protocols answer a
 * scripted `fail` or a bad request: `{"error": {message, type, param, code}}`.
 */
import { jsonResponse } from './protocol.js';

/** The `type` and `code` OpenAI's API puts in the error body for each status. */
export function openaiErrorShape(status: number): { type: string; code: string | null } {
  switch (status) {
    case 400:
      return { type: 'invalid_request_error', code: null };
    case 401:
      return { type: 'invalid_request_error', code: 'invalid_api_key' };
    case 403:
      return { type: 'invalid_request_error', code: 'unsupported_country_region_territory' };
    case 404:
      return { type: 'invalid_request_error', code: 'model_not_found' };
    case 429:
      return { type: 'requests', code: 'rate_limit_exceeded' };
    default:
      return status < 500
        ? { type: 'invalid_request_error', code: null }
        : { type: 'server_error', code: null };
  }
}

export function openaiError(status: number, message: string, headers: Record<string, string> = {}): Response {
  const { type, code } = openaiErrorShape(status);
  return jsonResponse(status, { error: { message, type, param: null, code } }, headers);
}
