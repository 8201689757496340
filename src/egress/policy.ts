import { z } from 'zod';
import type { RunWarning } from '../events/types.js';
import { hostMatches, intersectPatterns, parsePatterns, patternsOutside } from './patterns.js';

/**
 * Which hosts a run may reach through the egress proxy, and how the levels that set it combine.
 *
 * Levels: the operator (EGRESS_POLICY, EGRESS_ALLOW), the collection (its settings), the runbook
 * (frontmatter `network`) and the request (`jetty.network_enabled`). Each level may only narrow
 * what the one above gives: the run gets the intersection of all of them. The operator's policy is
 * both every collection's default and its ceiling (as RUN_MAX_COST_USD is for budgets), because
 * any API key of a collection can change its settings; a runbook or request asking for more than
 * its ceiling gets the ceiling and a `network_narrowed` warning saying what was cut.
 */

export const EGRESS_MODES = ['none', 'allowlist', 'open'] as const;
export type EgressMode = (typeof EGRESS_MODES)[number];

/** `allow` holds canonical host patterns (src/egress/patterns.ts); empty unless `allowlist`. */
export interface EgressPolicy {
  mode: EgressMode;
  allow: string[];
}

export const NO_EGRESS: EgressPolicy = { mode: 'none', allow: [] };
export const OPEN_EGRESS: EgressPolicy = { mode: 'open', allow: [] };

export const egressPolicySchema = z.object({
  mode: z.enum(EGRESS_MODES),
  allow: z.array(z.string()).default([]),
});

/** Whether the policy lets a connection to `host` (as the client named it) be attempted. */
export function admits(policy: EgressPolicy, host: string): boolean {
  if (policy.mode === 'open') return true;
  if (policy.mode === 'none') return false;
  return policy.allow.some((p) => hostMatches(p, host));
}

/** What both policies admit. An allow list left with no pattern is `none`. */
export function narrow(ceiling: EgressPolicy, wish: EgressPolicy | undefined): EgressPolicy {
  if (wish === undefined || wish.mode === 'open') return ceiling;
  if (wish.mode === 'none' || ceiling.mode === 'none') return NO_EGRESS;
  const allow = ceiling.mode === 'open' ? [...wish.allow] : intersectPatterns(ceiling.allow, wish.allow);
  return allow.length === 0 ? NO_EGRESS : { mode: 'allowlist', allow };
}

/**
 * What `wish` asks for that `ceiling` does not give: `open` beyond an allow list or none, or the
 * patterns outside the ceiling's list. Null when the wish lies within the ceiling.
 */
export function beyondCeiling(ceiling: EgressPolicy, wish: EgressPolicy): string | null {
  if (wish.mode === 'none' || ceiling.mode === 'open') return null;
  if (wish.mode === 'open') return 'open';
  if (ceiling.mode === 'none') return wish.allow.join(', ');
  const outside = patternsOutside(wish.allow, ceiling.allow);
  return outside.length ? outside.join(', ') : null;
}

/** "none", "open", or "allowlist (pypi.org, *.pythonhosted.org)", the list cut after a few. */
export function describePolicy(p: EgressPolicy, maxShown = 8): string {
  if (p.mode !== 'allowlist') return p.mode;
  const shown = p.allow.slice(0, maxShown).join(', ');
  const more = p.allow.length > maxShown ? `, and ${p.allow.length - maxShown} more` : '';
  return `allowlist (${shown}${more})`;
}

/**
 * A runbook's `network` frontmatter: `none`/`false`, `open`, `true` (whatever the collection
 * gives: no narrowing), a list of host patterns, or `{allow: [...]}` (`{policy, allow}` also).
 * Undefined: the runbook does not narrow.
 */
export const runbookNetworkSchema = z
  .union([
    z.enum(EGRESS_MODES),
    z.boolean(),
    z.array(z.string()),
    z.strictObject({ policy: z.enum(EGRESS_MODES).optional(), allow: z.array(z.string()).optional() }),
  ])
  .transform((v, ctx): EgressPolicy | undefined => {
    if (v === true) return undefined;
    if (v === false || v === 'none') return NO_EGRESS;
    if (v === 'open') return OPEN_EGRESS;
    const mode = Array.isArray(v) ? 'allowlist' : typeof v === 'string' ? v : (v.policy ?? 'allowlist');
    const raw = Array.isArray(v) ? v : typeof v === 'string' ? [] : (v.allow ?? []);
    if (mode !== 'allowlist') return mode === 'open' ? OPEN_EGRESS : NO_EGRESS;
    const parsed = parsePatterns(raw);
    if ('error' in parsed) {
      ctx.addIssue({ code: 'custom', message: parsed.error });
      return z.NEVER;
    }
    if (parsed.patterns.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'an allow list needs at least one host pattern' });
      return z.NEVER;
    }
    return { mode: 'allowlist', allow: parsed.patterns };
  });

/** A collection's own setting: null policy means it takes the operator's. */
export interface CollectionEgress {
  egress_policy: EgressMode | null;
  egress_allow: string[];
}

export interface RunEgressInput {
  operator: EgressPolicy;
  collection: { name: string; settings: CollectionEgress };
  /** The runbook's `network`, parsed; undefined when it sets none (or `true`). */
  runbook: EgressPolicy | undefined;
  /** `jetty.network_enabled`: false is `none`; true or absent does not narrow. */
  networkEnabled: boolean | undefined;
}

export interface RunEgress {
  policy: EgressPolicy;
  /** What set the run's policy, for messages: the most specific level that narrowed it. */
  decidedBy: string;
  warnings: RunWarning[];
}

/** The collection's policy as a ceiling: its setting within the operator's. */
export function collectionCeiling(operator: EgressPolicy, settings: CollectionEgress): EgressPolicy {
  if (settings.egress_policy === null) return operator;
  return narrow(operator, { mode: settings.egress_policy, allow: settings.egress_allow });
}

/** The run's policy, and a warning when the runbook asked for more than its collection gives. */
export function resolveRunEgress(input: RunEgressInput): RunEgress {
  const { operator, collection, runbook, networkEnabled } = input;
  const ceiling = collectionCeiling(operator, collection.settings);
  const ceilingName =
    collection.settings.egress_policy === null
      ? 'the server’s EGRESS_POLICY'
      : `collection ${collection.name}’s egress_policy`;
  const warnings: RunWarning[] = [];
  if (networkEnabled === false) return { policy: NO_EGRESS, decidedBy: 'jetty.network_enabled', warnings };
  if (runbook === undefined) return { policy: ceiling, decidedBy: ceilingName, warnings };
  const policy = narrow(ceiling, runbook);
  const cut = beyondCeiling(ceiling, runbook);
  if (cut !== null) {
    warnings.push({
      code: 'network_narrowed',
      message: `The runbook’s network asks for ${cut === 'open' ? 'open network' : `hosts outside this server’s policy (${cut})`}, but ${ceilingName} is ${describePolicy(ceiling)}: the run gets ${describePolicy(policy)}, and connections beyond it are refused and recorded as net.connect events.`,
    });
  }
  return { policy, decidedBy: runbook.mode === 'none' ? 'the runbook’s network' : ceilingName, warnings };
}
