import { createHmac } from 'node:crypto';

/**
 * Webhook signatures, as Jetty signs them: the hex HMAC-SHA256, keyed with the shared secret, of
 * `"{timestamp}.{body}"`, where the timestamp is the unix seconds sent in `X-Mise-Timestamp` and
 * the body is the exact bytes sent. Signing the timestamp lets a receiver refuse old replays.
 */
export const SIGNATURE_HEADER = 'X-Mise-Signature';
export const TIMESTAMP_HEADER = 'X-Mise-Timestamp';
export const TRAJECTORY_HEADER = 'X-Mise-Trajectory-Id';

export function signWebhook(secret: string, timestamp: number, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`, 'utf8').digest('hex');
}

/** The headers of one delivery. Without a secret the request goes unsigned (no signature header). */
export function webhookHeaders(opts: {
  runId: string;
  body: string;
  timestamp: number;
  secret: string | undefined;
}): Record<string, string> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': 'runbook-runtime-webhooks',
    [TIMESTAMP_HEADER]: String(opts.timestamp),
    [TRAJECTORY_HEADER]: opts.runId,
  };
  if (opts.secret !== undefined)
    headers[SIGNATURE_HEADER] = signWebhook(opts.secret, opts.timestamp, opts.body);
  return headers;
}
