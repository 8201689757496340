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

export async function postWebhook(opts: {
  url: string;
  body: string;
  headers: Record<string, string>;
  timeoutMs: number;
  /** Aborts the attempt (shutdown); the attempt then throws DeliveryInterrupted. */
  signal?: AbortSignal;
}): Promise<DeliveryResult> {
  const t0 = Date.now();
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout;
  try {
    const res = await fetch(opts.url, {
      method: 'POST',
      headers: opts.headers,
      body: opts.body,
      // A redirect is an answer like any other non-2xx: the signed body goes only to the URL given.
      redirect: 'manual',
      signal,
    });
    await res.body?.cancel().catch(() => undefined);
    const { ok, final } = classifyStatus(res.status);
    return {
      ok,
      final,
      status_code: res.status,
      error: ok ? null : `the receiver answered HTTP ${res.status}`,
      duration_ms: Date.now() - t0,
    };
  } catch (err) {
    if (opts.signal?.aborted) throw new DeliveryInterrupted();
    const error = timeout.aborted
      ? `no answer within ${opts.timeoutMs} ms`
      : `the request failed: ${reasonOf(err)}`;
    return { ok: false, final: false, status_code: null, error, duration_ms: Date.now() - t0 };
  }
}

/** fetch's own message is "fetch failed"; the cause says what happened (ECONNREFUSED, ENOTFOUND, ...). */
function reasonOf(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
  if (cause && typeof cause.code === 'string') return cause.code;
  if (cause && typeof cause.message === 'string') return cause.message;
  return err instanceof Error ? err.message : String(err);
}
