import { createRequire } from 'node:module';
import { expect } from 'vitest';

// parse-prometheus-text-format ships no types: this is the part of its output the tests read.
export interface Sample {
  value?: string;
  labels?: Record<string, string>;
  buckets?: Record<string, string>;
  count?: string;
  sum?: string;
}
export interface Family {
  name: string;
  type: string;
  help: string;
  metrics: Sample[];
}
export type Families = Map<string, Family>;

const parse = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => Family[];

/** GET /metrics and parse it with a Prometheus text-format parser. */
export async function scrape(url: string, token?: string): Promise<Families> {
  const res = await fetch(`${url}/metrics`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return new Map(parse(await res.text()).map((f) => [f.name, f]));
}

/** The sum of a counter's or gauge's samples whose labels include `labels`. */
export function value(m: Families, name: string, labels: Record<string, string> = {}): number {
  return samples(m, name, labels).reduce((sum, s) => sum + Number(s.value ?? 0), 0);
}

/** How many observations a histogram's samples with `labels` hold. */
export function observations(m: Families, name: string, labels: Record<string, string> = {}): number {
  return samples(m, name, labels).reduce((sum, s) => sum + Number(s.count ?? 0), 0);
}

function samples(m: Families, name: string, labels: Record<string, string>): Sample[] {
  return (m.get(name)?.metrics ?? []).filter((s) =>
    Object.entries(labels).every(([k, v]) => s.labels?.[k] === v),
  );
}
