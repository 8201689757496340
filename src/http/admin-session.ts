import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The queue dashboard's sign-in, for browsers: the operator types the admin token once into a form
 * (never a URL), and gets an HttpOnly, SameSite=Strict cookie holding an expiry and an HMAC of it
 * keyed by the token. Nothing is stored server-side, so every API process accepts it, and changing
 * JETTY_ADMIN_TOKEN signs everyone out.
 */
export const ADMIN_COOKIE = 'jetty_admin';

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Constant-time comparison of a presented token with the admin token. */
export function isAdminToken(presented: string, adminToken: string): boolean {
  return timingSafeEqual(digest(presented), digest(adminToken));
}

function sign(adminToken: string, expiresAt: number): string {
  return createHmac('sha256', adminToken).update(`jetty-admin-session:${expiresAt}`).digest('base64url');
}

export function makeSession(adminToken: string, ttlSec: number, now = Date.now()): string {
  const expiresAt = Math.floor(now / 1000) + ttlSec;
  return `${expiresAt}.${sign(adminToken, expiresAt)}`;
}

export function isValidSession(value: string, adminToken: string, now = Date.now()): boolean {
  const m = /^(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(value);
  if (!m) return false;
  const expiresAt = Number(m[1]);
  if (expiresAt * 1000 <= now) return false;
  return timingSafeEqual(Buffer.from(m[2]!), Buffer.from(sign(adminToken, expiresAt)));
}

/** One cookie's value from a Cookie header, or null. */
export function cookieValue(header: string | undefined, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

export function sessionCookie(value: string, ttlSec: number, secure: boolean): string {
  return [
    `${ADMIN_COOKIE}=${value}`,
    'Path=/admin',
    `Max-Age=${ttlSec}`,
    'HttpOnly',
    'SameSite=Strict',
    ...(secure ? ['Secure'] : []),
  ].join('; ');
}

export function clearedCookie(): string {
  return `${ADMIN_COOKIE}=; Path=/admin; Max-Age=0; HttpOnly; SameSite=Strict`;
}
