import { type AddressPolicy, AddressRefused, HostUnresolved } from '../net/address-policy.js';
import { BadRedirect, guardedRequest, TooManyRedirects } from '../net/guarded-request.js';

/** One POST of a webhook and what its answer means for retrying. */

export interface DeliveryResult {
  ok: boolean;
  /** Trying again would not help: the receiver refused the request itself (4xx but 408 and 429). */
  final: boolean;
  /** The receiver's HTTP status, or null when it did not answer. */
  status_code: number | null;
  /** Why the attempt failed, or null when it succeeded. Never holds the secret or the body. */
  error: string | null;
  duration_ms: number;
}

/** A 2xx is delivered; a 4xx other than 408 and 429 is final; anything else is tried again. */
export function classifyStatus(status: number): { ok: boolean; final: boolean } {
  if (status >= 200 && status < 300) return { ok: true, final: true };
  if (status >= 400 && status < 500 && status !== 408 && status !== 429) return { ok: false, final: true };
  return { ok: false, final: false };
}

/** Thrown when the caller's signal (a worker shutting down) stopped the attempt: not the receiver's fault. */
export class DeliveryInterrupted extends Error {
  constructor() {
    super('the delivery was interrupted by shutdown');
    this.name = 'DeliveryInterrupted';
  }
}

export interface PostWebhookOptions {
  url: string;
  body: string;
  headers: Record<string, string>;
  timeoutMs: number;
  /** Which addresses the POST may reach (checked after DNS, on every redirect). */
  policy: AddressPolicy;
  maxRedirects: number;
  /** Aborts the attempt (shutdown); the attempt then throws DeliveryInterrupted. */
  signal?: AbortSignal;
}

/**
 * One POST, redirects followed (each hop checked). What is recorded never holds the target's
 * answer beyond its status class, and a connection that failed reads the same whatever the cause,
 * so that the record of a run cannot serve to map a network.
 */
export async function postWebhook(opts: PostWebhookOptions): Promise<DeliveryResult> {
  const t0 = Date.now();
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout;
  const done = (r: Omit<DeliveryResult, 'duration_ms'>): DeliveryResult => ({
    ...r,
    duration_ms: Date.now() - t0,
  });
  try {
    const res = await guardedRequest({
      url: opts.url,
      method: 'POST',
      headers: opts.headers,
      body: opts.body,
      policy: opts.policy,
      maxRedirects: opts.maxRedirects,
      signal,
    });
    const { ok, final } = classifyStatus(res.status);
    const error = ok ? null : `the receiver answered HTTP ${Math.floor(res.status / 100)}xx`;
    return done({ ok, final, status_code: res.status, error });
  } catch (err) {
    if (opts.signal?.aborted) throw new DeliveryInterrupted();
    // The operator's policy will say the same next time: no retry.
    if (err instanceof AddressRefused)
      return done({ ok: false, final: true, status_code: null, error: err.message });
    const error =
      err instanceof HostUnresolved || err instanceof TooManyRedirects || err instanceof BadRedirect
        ? `the request failed: ${err.message}`
        : `the receiver gave no HTTP answer (no connection, the connection closed, or no answer within ${opts.timeoutMs} ms)`;
    return done({ ok: false, final: false, status_code: null, error });
  }
}
