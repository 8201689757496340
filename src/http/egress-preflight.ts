import { networkCommands } from '../egress/needs-network.js';
import { type EgressPolicy, resolveRunEgress } from '../egress/policy.js';
import type { RunWarning } from '../events/types.js';
import type { ResolvedRunbook } from '../runbook/resolve.js';
import type { CollectionContext } from './preflight.js';
import type { ChatRequest } from './schemas.js';

/**
 * The run's network policy (operator, collection, runbook, request: each may only narrow), with
 * what the user should know first: the runbook asked for more than it gets (`network_narrowed`),
 * or it installs or downloads things and gets no network at all (`network_needed`).
 */
export function planEgress(
  resolved: ResolvedRunbook,
  jetty: NonNullable<ChatRequest['jetty']>,
  operator: EgressPolicy,
  ctx: CollectionContext,
): { policy: EgressPolicy; warnings: RunWarning[] } {
  const run = resolveRunEgress({
    operator,
    collection: { name: ctx.collection, settings: ctx.egress },
    runbook: resolved.frontmatter.network,
    networkEnabled: jetty.network_enabled,
  });
  const warnings = [...run.warnings];
  const fetches = run.policy.mode === 'none' ? networkCommands(resolved.renderedBody) : [];
  if (fetches.length > 0) {
    warnings.push({
      code: 'network_needed',
      message: `The runbook fetches from the network (${fetches.join(', ')}), but this run has none: its egress policy is none (set by ${run.decidedBy}). Those steps will fail. An operator sets EGRESS_POLICY (and EGRESS_ALLOW); a collection narrows it with PATCH /v1/collection/settings; a runbook with its network frontmatter.`,
    });
  }
  return { policy: run.policy, warnings };
}
