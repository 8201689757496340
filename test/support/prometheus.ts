import { spawnSync } from 'node:child_process';
import { expect } from 'vitest';

/**
 * /metrics read the way Prometheus reads it: the text is parsed by the Prometheus project's own
 * Python client parser (prometheus_client, installed by scripts/setup.sh --test), which rejects
 * text Prometheus would not scrape.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
export interface Scrape {
  /** Family name (a counter's without `_total`) → its type: counter, gauge, histogram… */
  types: Map<string, string>;
  samples: Sample[];
}

const PARSE = `
import json, math, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    out.append({"name": f.name, "type": f.type, "samples": [
        {"name": s.name, "labels": s.labels, "value": s.value if math.isfinite(s.value) else str(s.value)}
        for s in f.samples]})
print(json.dumps(out))
`;

export function parseMetrics(text: string): Scrape {
  const py = spawnSync('python3', ['-c', PARSE], {
    input: text,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (py.status !== 0) throw new Error(`the Prometheus parser refused the text: ${py.stderr}`);
  const families = JSON.parse(py.stdout) as Array<{
    name: string;
    type: string;
    samples: Array<{ name: string; labels: Record<string, string>; value: number | string }>;
  }>;
  return {
    types: new Map(families.map((f) => [f.name, f.type])),
    samples: families.flatMap((f) => f.samples.map((s) => ({ ...s, value: Number(s.value) }))),
  };
}

/** GET /metrics and parse it. */
export async function scrape(url: string, token?: string): Promise<Scrape> {
  const res = await fetch(`${url}/metrics`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseMetrics(await res.text());
}

/** The sum of the samples named `name` whose labels include `labels`. */
export function value(m: Scrape, name: string, labels: Record<string, string> = {}): number {
  return m.samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

/** How many observations a histogram's series with `labels` hold. */
export function observations(m: Scrape, name: string, labels: Record<string, string> = {}): number {
  return value(m, `${name}_count`, labels);
}
