import type { Redis } from 'ioredis';
import { z } from 'zod';
import { parsePatterns } from '../egress/patterns.js';
import {
  beyondCeiling,
  type CollectionEgress,
  describePolicy,
  EGRESS_MODES,
  type EgressPolicy,
} from '../egress/policy.js';
import { badRequest } from '../errors.js';
import type { TenancyKeys } from './keys.js';

/**
 * A collection's egress setting: its runs' network policy within the operator's (EGRESS_POLICY,
 * EGRESS_ALLOW), which is both its default and its ceiling. Kept in one hash per collection.
 */

export const egressSettingsPatchSchema = z.strictObject({
  egress_policy: z
    .enum(EGRESS_MODES, { error: `must be one of ${EGRESS_MODES.join(', ')}, or null` })
    .nullable()
    .optional()
    .describe(
      "The network policy of the collection's runs: none, allowlist (egress_allow) or open, within the server's EGRESS_POLICY; null: the server's",
    ),
  egress_allow: z
    .array(z.string(), {
      error: 'must be a list of host patterns such as ["pypi.org", "*.pythonhosted.org"]',
    })
    .nullable()
    .optional()
    .describe(
      'Host patterns (pypi.org, *.pythonhosted.org, an IP address) the runs may reach under egress_policy allowlist; null clears',
    ),
});
export type EgressSettingsPatch = z.infer<typeof egressSettingsPatchSchema>;

export const NO_COLLECTION_EGRESS: CollectionEgress = { egress_policy: null, egress_allow: [] };

/**
 * The setting after a change, checked: patterns well formed, a list only with allowlist, and
 * nothing beyond the operator's policy (a 400 naming the field and the server setting).
 */
export function applyEgressPatch(
  current: CollectionEgress,
  patch: EgressSettingsPatch,
  operator: EgressPolicy,
): CollectionEgress {
  const policy = patch.egress_policy === undefined ? current.egress_policy : patch.egress_policy;
  let allow = patch.egress_allow === undefined ? current.egress_allow : (patch.egress_allow ?? []);
  if (patch.egress_allow) {
    const parsed = parsePatterns(patch.egress_allow);
    if ('error' in parsed) throw badRequest(`egress_allow: ${parsed.error}.`, 'egress_allow');
    allow = parsed.patterns;
  }
  // Leaving allowlist drops its list, unless the same change gives one (then it is an error below).
  if (patch.egress_policy !== undefined && policy !== 'allowlist' && patch.egress_allow === undefined)
    allow = [];
  if (policy !== 'allowlist' && allow.length > 0) {
    throw badRequest(
      `egress_allow is read only with egress_policy "allowlist" (it would be ${policy ?? 'the server’s'}). Set egress_policy to allowlist, or egress_allow to null.`,
      'egress_allow',
    );
  }
  if (policy === 'allowlist' && allow.length === 0) {
    throw badRequest(
      'egress_policy "allowlist" needs egress_allow: the host patterns its runs may reach, such as ["pypi.org", "*.pythonhosted.org"].',
      'egress_allow',
    );
  }
  if (policy !== null) {
    const beyond = beyondCeiling(operator, { mode: policy, allow });
    if (beyond !== null) {
      const field = beyond === 'open' || operator.mode === 'none' ? 'egress_policy' : 'egress_allow';
      throw badRequest(
        `${field} asks for ${beyond === 'open' ? 'an open network' : beyond}, beyond this server's egress policy, ${describePolicy(operator)} (EGRESS_POLICY, EGRESS_ALLOW). A collection may only narrow it; ask the operator to widen it.`,
        field,
        'egress_over_maximum',
      );
    }
  }
  return { egress_policy: policy, egress_allow: allow };
}

export class CollectionEgressStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: TenancyKeys,
  ) {}

  async get(collection: string): Promise<CollectionEgress> {
    const [policy, allow] = await this.redis.hmget(this.keys.egressSettings(collection), 'policy', 'allow');
    const mode = EGRESS_MODES.find((m) => m === policy) ?? null;
    return {
      egress_policy: mode,
      egress_allow: mode === 'allowlist' && allow ? (JSON.parse(allow) as string[]) : [],
    };
  }

  async put(collection: string, settings: CollectionEgress): Promise<void> {
    const key = this.keys.egressSettings(collection);
    if (settings.egress_policy === null) {
      await this.redis.del(key);
      return;
    }
    await this.redis
      .multi()
      .del(key)
      .hset(key, 'policy', settings.egress_policy, 'allow', JSON.stringify(settings.egress_allow))
      .exec();
  }
}
