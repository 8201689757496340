import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { type AddressPolicy, bareHost } from './address-policy.js';

/**
 * An HTTP request to a user-given URL, made under an AddressPolicy: each hop's host is resolved
 * once, checked, and the connection goes to that checked address (the Host header and TLS name stay
 * the URL's). Redirects are followed here, each hop checked again, up to a bound. The answer's
 * body is never read: callers get the status only, so nothing a target says can travel back.
 */

export interface GuardedRequestOptions {
  url: string;
  method: string;
  headers: Record<string, string>;
  body?: string;
  policy: AddressPolicy;
  /** Redirects followed at most; past them the request fails with TooManyRedirects. */
  maxRedirects: number;
  signal?: AbortSignal;
}

export interface GuardedResponse {
  status: number;
  /** The URL that gave this answer (after redirects). */
  url: string;
  redirects: number;
}

export class TooManyRedirects extends Error {
  constructor(readonly max: number) {
    super(`more than ${max} redirects`);
    this.name = 'TooManyRedirects';
  }
}

/** A redirect to somewhere a request may not go (another scheme, credentials in the URL). */
export class BadRedirect extends Error {
  constructor(why: string) {
    super(`a redirect ${why}`);
    this.name = 'BadRedirect';
  }
}

/** The connection failed, closed or reset before an answer: one error whatever the cause. */
export class NoAnswer extends Error {
  constructor() {
    super('no HTTP answer');
    this.name = 'NoAnswer';
  }
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * Makes the request, following redirects with the same method and body (a webhook is a POST
 * wherever it lands). Throws AddressRefused/HostUnresolved (policy), TooManyRedirects, BadRedirect,
 * NoAnswer, or the signal's reason when aborted.
 */
export async function guardedRequest(opts: GuardedRequestOptions): Promise<GuardedResponse> {
  let url = new URL(opts.url);
  for (let redirects = 0; ; redirects++) {
    const res = await oneHop(url, opts);
    const location = res.headers.location;
    // The body is never read; dropping the connection also frees it from a target that holds it.
    res.destroy();
    if (!REDIRECTS.has(res.statusCode ?? 0) || !location) {
      return { status: res.statusCode ?? 0, url: url.toString(), redirects };
    }
    if (redirects >= opts.maxRedirects) throw new TooManyRedirects(opts.maxRedirects);
    url = nextUrl(url, location);
  }
}

function nextUrl(from: URL, location: string): URL {
  let next: URL;
  try {
    next = new URL(location, from);
  } catch {
    throw new BadRedirect('to a malformed URL');
  }
  if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new BadRedirect('to a non-HTTP URL');
  if (next.username || next.password) throw new BadRedirect('to a URL with credentials');
  return next;
}

async function oneHop(url: URL, opts: GuardedRequestOptions): Promise<IncomingMessage> {
  const host = bareHost(url.hostname);
  const pinned = await opts.policy.resolve(host);
  const secure = url.protocol === 'https:';
  const reqOpts: RequestOptions & { servername?: string } = {
    method: opts.method,
    // The checked address itself: the request library does no lookup of its own.
    host: pinned.address,
    family: pinned.family,
    port: url.port || (secure ? 443 : 80),
    path: `${url.pathname}${url.search}`,
    headers: { ...opts.headers, host: url.host },
    agent: false,
    signal: opts.signal,
  };
  // TLS checks the certificate against the URL's name, not the address connected to.
  if (secure && isIP(host) === 0) reqOpts.servername = host;
  return new Promise<IncomingMessage>((resolve, reject) => {
    const req = (secure ? httpsRequest : httpRequest)(reqOpts, resolve);
    // Refused, reset, closed, a TLS failure: one outcome, so that errors cannot map a network.
    req.on('error', () => reject(opts.signal?.aborted ? opts.signal.reason : new NoAnswer()));
    req.end(opts.body);
  });
}
