import { truncateUtf8 } from '../utf8.js';

/**
 * Keeps a run's secret values out of everything the run records. The agent may print a secret
 * (`echo $TOKEN`), a CLI may repeat it in an error: every event, the final text and the error are
 * passed through this before they are stored, with each value replaced by `[redacted:NAME]`.
 * It cannot see a value the agent has transformed (encoded, split); docs/tenancy.md says so.
 *
 * Whatever shortens text must redact first and cut after (`cut`): cutting first could split a value
 * and leave its start where no search finds it. For text cut before it could be redacted (a line
 * over the length limit), `dropPartialTail` removes the start of a value the cut left at the end.
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

  /**
   * `text` redacted, then cut to at most `maxBytes` UTF-8 bytes. Whole values are marks by then, so
   * the cut cannot split one; the start of a value that reached this text already cut (by the CLI,
   * or by the line limit) is dropped from the end as well.
   */
  cut(text: string, maxBytes: number): { text: string; truncated: boolean } {
    const cut = truncateUtf8(this.text(text), maxBytes);
    return cut.truncated ? { text: this.dropPartialTail(cut.text), truncated: true } : cut;
  }

  /**
   * `text` without its longest ending that is the start of a secret value: what is left of a value
   * when text was cut inside it. Endings shorter than MIN_REDACTED_LENGTH go too, since a cut can
   * land anywhere in the value (at worst a few innocent characters are lost at a cut).
   */
  dropPartialTail(text: string): string {
    let drop = 0;
    for (const [value] of this.entries) {
      for (let n = Math.min(value.length - 1, text.length); n > drop; n--) {
        if (text.endsWith(value.slice(0, n))) {
          drop = n;
          break;
        }
      }
    }
    return drop === 0 ? text : text.slice(0, text.length - drop);
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
