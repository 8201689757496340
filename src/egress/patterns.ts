import { isIP } from 'node:net';
import { bareHost } from '../net/address-policy.js';

/**
 * Host patterns of an egress allow list. Three forms, nothing else, so that whether one list lies
 * within another can be decided exactly:
 *
 * - `pypi.org`: that host only;
 * - `*.pypi.org`: any name under pypi.org, at any depth (`files.pypi.org`, `a.b.pypi.org`), not
 *   `pypi.org` itself (list both when both are wanted);
 * - an IP address (`203.0.113.7`, `::1` or `[::1]`): connections to that literal address.
 *
 * Names are compared in lower case without a trailing dot. Ports are not part of a pattern: the
 * operator's EGRESS_PORTS applies to every host.
 */

export const MAX_PATTERNS = 200;
const LABEL = '[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?';
const NAME = new RegExp(`^(?=.{1,253}$)${LABEL}(\\.${LABEL})*$`);

/** The pattern in its canonical form, or an explanation of why it is not one. */
export function parsePattern(raw: string): { pattern: string } | { error: string } {
  const text = raw.trim();
  const shown = JSON.stringify(raw);
  if (text === '*' || text === '*.*') {
    return { error: `${shown} would admit every host: use the policy "open" instead of an allow list` };
  }
  const wild = text.startsWith('*.');
  const host = bareHost(wild ? text.slice(2) : text);
  if (!wild && isIP(host) !== 0) return { pattern: host };
  if (host.includes('*')) {
    return { error: `${shown}: a wildcard may only be the whole first label, as in "*.example.com"` };
  }
  if (!NAME.test(host)) {
    return { error: `${shown} is neither a host name (pypi.org), a wildcard (*.pypi.org) nor an IP address` };
  }
  // "*.com" would open a whole top-level domain: a wildcard needs at least two labels under it.
  if (wild && !host.includes('.')) {
    return { error: `${shown} covers a whole top-level domain; name the domain, as in "*.example.com"` };
  }
  return { pattern: wild ? `*.${host}` : host };
}

/** Parses a list; the first bad pattern is the error. Duplicates go. */
export function parsePatterns(raw: readonly string[]): { patterns: string[] } | { error: string } {
  if (raw.length > MAX_PATTERNS) return { error: `at most ${MAX_PATTERNS} host patterns; got ${raw.length}` };
  const out: string[] = [];
  for (const r of raw) {
    const p = parsePattern(r);
    if ('error' in p) return p;
    if (!out.includes(p.pattern)) out.push(p.pattern);
  }
  return { patterns: out };
}

/** Whether `host` (a name or an address as the client asked for it) matches the pattern. */
export function hostMatches(pattern: string, host: string): boolean {
  const h = bareHost(host);
  if (pattern.startsWith('*.'))
    return isIP(h) === 0 && h.endsWith(pattern.slice(1)) && h.length > pattern.length - 1;
  return h === pattern;
}

/** Whether every host `inner` admits is admitted by `outer`. */
export function patternWithin(inner: string, outer: string): boolean {
  if (!outer.startsWith('*.')) return inner === outer;
  if (isIP(inner) !== 0) return false;
  const suffix = outer.slice(1);
  const body = inner.startsWith('*.') ? inner.slice(1) : `.${inner}`;
  return body.endsWith(suffix) && (body.length > suffix.length || inner.startsWith('*.'));
}

/** The hosts two patterns both admit, as one pattern, or null when they share none. */
function meet(a: string, b: string): string | null {
  if (patternWithin(a, b)) return a;
  if (patternWithin(b, a)) return b;
  return null;
}

/** The hosts both lists admit, as a list (no pattern inside another one of the list). */
export function intersectPatterns(a: readonly string[], b: readonly string[]): string[] {
  const met = new Set<string>();
  for (const p of a) {
    for (const q of b) {
      const m = meet(p, q);
      if (m !== null) met.add(m);
    }
  }
  const all = [...met];
  return all.filter((p) => !all.some((q) => q !== p && patternWithin(p, q)));
}

/** The patterns of `inner` that `outer` does not wholly admit. */
export function patternsOutside(inner: readonly string[], outer: readonly string[]): string[] {
  return inner.filter((p) => !outer.some((q) => patternWithin(p, q)));
}
