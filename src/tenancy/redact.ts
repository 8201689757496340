/**
 * Keeps a run's secret values out of everything the run records. The agent may print a secret
 * (`echo $TOKEN`), a CLI may repeat it in an error: every event, the final text and the error are
 * passed through this before they are stored, with each value replaced by `[redacted:NAME]`.
 * It cannot see a value the agent has transformed (encoded, split); the README says so.
 */

/** Values shorter than this are not searched for: they would blank out ordinary text. */
export const MIN_REDACTED_LENGTH = 4;

export class Redactor {
  private readonly entries: Array<[value: string, mark: string]>;

  constructor(secrets: Readonly<Record<string, string>>) {
    this.entries = Object.entries(secrets)
      .filter(([, v]) => v.length >= MIN_REDACTED_LENGTH)
      // Longest first: a value that contains another is replaced whole.
      .sort(([, a], [, b]) => b.length - a.length)
      .map(([name, v]) => [v, `[redacted:${name}]`]);
  }

  get empty(): boolean {
    return this.entries.length === 0;
  }

  text(s: string): string {
    let out = s;
    for (const [value, mark] of this.entries) if (out.includes(value)) out = out.split(value).join(mark);
    return out;
  }

  /** A copy of `v` with every string (keys included) redacted. */
  deep<T>(v: T): T {
    if (this.empty) return v;
    return this.walk(v) as T;
  }

  private walk(v: unknown): unknown {
    if (typeof v === 'string') return this.text(v);
    if (Array.isArray(v)) return v.map((x) => this.walk(x));
    if (v !== null && typeof v === 'object') {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [this.text(k), this.walk(x)]));
    }
    return v;
  }
}
