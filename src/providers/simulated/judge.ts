/**
 * The simulated provider playing a rubric judge, so the whole evaluation path (judge called through
 * the gateway, usage read there, scores applied) runs without a model. Its answers come from the
 * runbook's `simulate-judge` block, one line per criterion:
 *
 * ````
 * ```simulate-judge
 * 1: 5 clear and complete
 * Accuracy: 2 misses two of the sources
 * fail: 503        # optional: the judge call answers this HTTP status instead
 * ```
 * ````
 *
 * A line is `<criterion number or name>: <score 1-5> [notes]`. A criterion the block does not list
 * is left out of the answer (so a test can see a judge skip one). With no block, every criterion
 * scores 4 with a note saying it is a placeholder. It speaks Anthropic's Messages API, the
 * protocol the judge client uses for the simulated provider.
 */
import { AppError } from '../../errors.js';
import { estimateTokens } from './plan.js';
import { jsonResponse } from './protocol.js';

export interface JudgeCriterion {
  number: number;
  name: string;
  key: string;
}

export interface JudgeScript {
  scores: Map<string, { score: number; notes: string }>;
  failStatus: number | null;
}

export const PLACEHOLDER_SCORE = 4;
const MAX_LINES = 200;

export class SimulateJudgeError extends AppError {
  constructor(line: number, problem: string) {
    super(`Invalid \`simulate-judge\` block in the runbook, line ${line}: ${problem}`, {
      status: 422,
      type: 'invalid_request_error',
      code: 'invalid_simulate_script',
      param: 'runbook',
    });
    this.name = 'SimulateJudgeError';
  }
}

/** The fenced block with info string `simulate-judge`, or null. Throws on a block that is never closed. */
function findBlock(markdown: string): { openLine: number; lines: { no: number; text: string }[] } | null {
  const lines = markdown.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const open = /^ {0,3}(`{3,}|~{3,})\s*simulate-judge\s*$/.exec(lines[i] ?? '');
    if (!open) continue;
    const fence = open[1]!;
    const body: { no: number; text: string }[] = [];
    for (let j = i + 1; j < lines.length; j++) {
      const text = lines[j]!;
      if (new RegExp(`^ {0,3}${fence[0] === '`' ? '`' : '~'}{${fence.length},}\\s*$`).test(text)) {
        return { openLine: i + 1, lines: body };
      }
      body.push({ no: j + 1, text });
    }
    throw new SimulateJudgeError(i + 1, 'the block is never closed. End it with a line holding only ```.');
  }
  return null;
}

/** The runbook's judge script, or null when it has none. Throws SimulateJudgeError naming the line. */
export function parseJudgeScript(runbook: string): JudgeScript | null {
  const block = findBlock(runbook);
  if (!block) return null;
  const script: JudgeScript = { scores: new Map(), failStatus: null };
  for (const { no, text } of block.lines.slice(0, MAX_LINES)) {
    const line = text.replace(/\s+#.*$/, '').trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([^:]+):\s*(\d+)(?:\s+(.*))?$/.exec(line);
    if (!m) {
      throw new SimulateJudgeError(
        no,
        `write \`<criterion number or name>: <score 1-5> [notes]\` or \`fail: <HTTP status>\`; got "${line.slice(0, 80)}".`,
      );
    }
    const key = m[1]!.trim().toLowerCase();
    const n = Number(m[2]);
    if (key === 'fail') {
      if (n < 400 || n > 599)
        throw new SimulateJudgeError(no, `\`fail\` takes an HTTP error status from 400 to 599; got ${n}.`);
      script.failStatus = n;
      continue;
    }
    if (n < 1 || n > 5) throw new SimulateJudgeError(no, `a score is a whole number from 1 to 5; got ${n}.`);
    script.scores.set(key, { score: n, notes: (m[3] ?? '').trim() });
  }
  return script;
}

/** Checks the block without throwing, for the pre-flight. */
export function validateJudgeScript(runbook: string): { ok: true } | { ok: false; message: string } {
  try {
    parseJudgeScript(runbook);
    return { ok: true };
  } catch (err) {
    if (err instanceof SimulateJudgeError) return { ok: false, message: err.message };
    throw err;
  }
}

/** The scores the simulated judge gives, in the JSON form the judge prompt asks for. */
export function scriptedAnswer(script: JudgeScript | null, criteria: readonly JudgeCriterion[]): string {
  const scores: { criterion: number; score: number; notes: string }[] = [];
  for (const c of criteria) {
    if (!script) {
      scores.push({
        criterion: c.number,
        score: PLACEHOLDER_SCORE,
        notes: 'Simulated judge: a placeholder score (the runbook has no simulate-judge block).',
      });
      continue;
    }
    const s =
      script.scores.get(String(c.number)) ??
      script.scores.get(c.name.toLowerCase()) ??
      script.scores.get(c.key);
    if (s)
      scores.push({
        criterion: c.number,
        score: s.score,
        notes: s.notes || `Simulated judge: scripted ${s.score}.`,
      });
  }
  return JSON.stringify({ scores });
}

/** A fetch-like upstream answering the judge's Messages call from the script. */
export function createSimulatedJudge(opts: { runbook: string; criteria: readonly JudgeCriterion[] }) {
  const script = parseJudgeScript(opts.runbook);
  return async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    if (request.method !== 'POST' || !url.pathname.endsWith('/v1/messages')) {
      return jsonResponse(404, {
        type: 'error',
        error: {
          type: 'not_found_error',
          message: `Simulated judge: nothing is served at ${request.method} ${url.pathname}.`,
        },
      });
    }
    const body = (await request.json().catch(() => ({}))) as {
      model?: string;
      system?: unknown;
      messages?: unknown;
    };
    if (script?.failStatus) {
      return jsonResponse(script.failStatus, {
        type: 'error',
        error: {
          type: 'api_error',
          message: `Simulated judge: scripted to fail with HTTP ${script.failStatus} (\`fail:\` in the simulate-judge block).`,
        },
      });
    }
    const text = scriptedAnswer(script, opts.criteria);
    return jsonResponse(200, {
      id: 'msg_sim_judge',
      type: 'message',
      role: 'assistant',
      model: body.model ?? 'simulated-judge',
      content: [{ type: 'text', text }],
      stop_reason: 'end_turn',
      stop_sequence: null,
      usage: {
        input_tokens: estimateTokens(JSON.stringify({ system: body.system, messages: body.messages })),
        output_tokens: estimateTokens(text),
        cache_read_input_tokens: 0,
        cache_creation_input_tokens: 0,
      },
    });
  };
}
