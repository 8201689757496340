import type { UsageData } from '../events/types.js';

/**
 * List prices in USD per million tokens, for estimating the cost of runs whose CLI reports none
 * (codex, gemini-cli, and opencode without prices in its config). Estimates are always marked as
 * such. Figures are the providers' published standard (non-batch) prices: Anthropic's pricing
 * page (Claude Sonnet 4.x $3 in / $15 out, cache reads $0.30, 5-minute cache writes $3.75; Opus
 * 4.5 and later $5 / $25; Haiku 4.5 $1 / $5, the Opus figure matching what claude-code 2.1.197
 * itself computed in our recordings), OpenAI's pricing page (GPT-5 $1.25 / $10, cached input
 * $0.125; GPT-5 mini $0.25 / $2), Google's Gemini API pricing page (Gemini 2.5 Pro $1.25 / $10 up
 * to 200k prompt tokens; Gemini 2.5 Flash $0.30 / $2.50). A model not listed gets no estimate.
 */
export interface Price {
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite: number;
}

const p = (input: number, output: number, cacheRead = input / 10, cacheWrite = input * 1.25): Price => ({
  input,
  output,
  cacheRead,
  cacheWrite,
});

/** Longest matching prefix wins; slugs are normalized first (vendor prefix dropped, dots to dashes). */
const PRICES: ReadonlyArray<[prefix: string, price: Price]> = [
  ['claude-opus-4-1', p(15, 75)],
  ['claude-opus-4-0', p(15, 75)],
  ['claude-opus-4', p(5, 25)],
  ['claude-sonnet-4', p(3, 15)],
  ['claude-3-7-sonnet', p(3, 15)],
  ['claude-haiku-4', p(1, 5)],
  ['claude-3-5-haiku', p(0.8, 4)],
  ['gpt-5-nano', p(0.05, 0.4, 0.005, 0.05)],
  ['gpt-5-mini', p(0.25, 2, 0.025, 0.25)],
  ['gpt-5', p(1.25, 10, 0.125, 1.25)],
  ['gpt-4-1', p(2, 8, 0.5, 2)],
  ['o3', p(2, 8, 0.5, 2)],
  ['gemini-2-5-pro', p(1.25, 10, 0.31, 1.25)],
  ['gemini-2-5-flash-lite', p(0.1, 0.4, 0.025, 0.1)],
  ['gemini-2-5-flash', p(0.3, 2.5, 0.075, 0.3)],
];

export function normalizeModel(model: string): string {
  return model
    .toLowerCase()
    .replace(/^[a-z0-9-]+\//, '')
    .replace(/^(us|eu|apac|global)\.anthropic\./, '')
    .replace(/^anthropic\./, '')
    .replace(/\[.*\]$/, '')
    .replace(/\./g, '-');
}

export function priceOf(model: string): Price | undefined {
  const m = normalizeModel(model);
  let best: [string, Price] | undefined;
  for (const entry of PRICES) {
    if (m.startsWith(entry[0]) && (!best || entry[0].length > best[0].length)) best = entry;
  }
  return best?.[1];
}

/** The estimated cost of one usage report, or undefined when its model has no known price. */
export function estimateCost(
  u: Pick<UsageData, 'input_tokens' | 'output_tokens' | 'cache_read_tokens' | 'cache_write_tokens' | 'model'>,
): number | undefined {
  if (!u.model) return undefined;
  const price = priceOf(u.model);
  if (!price) return undefined;
  const usd =
    (u.input_tokens * price.input +
      u.output_tokens * price.output +
      u.cache_read_tokens * price.cacheRead +
      u.cache_write_tokens * price.cacheWrite) /
    1_000_000;
  return Math.round(usd * 1e6) / 1e6;
}

/** Dollars with enough digits that a tiny amount still reads as a figure: $0.000042, $0.50, $12.30. */
export function formatUsd(v: number): string {
  return `$${v >= 1 ? v.toFixed(2) : v.toFixed(6).replace(/(\.\d{2}\d*?)0+$/, '$1')}`;
}
