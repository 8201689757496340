/** Asking the judge and reading its scores, with every way it can go wrong turned into a reason. */
import { JudgeCallError } from './judge-client.js';
import { JudgeAnswerError, parseJudgeAnswer } from './rubric.js';
import type { RubricCriterion, RubricScore } from './types.js';

/** Sends the system text and the prompt to the judge; resolves with its answer's text. */
export type JudgeFn = (system: string, prompt: string) => Promise<string>;

export async function callJudgeSafely(
  judge: JudgeFn,
  system: string,
  prompt: string,
  criteria: RubricCriterion[],
): Promise<{ scores: Record<string, RubricScore> } | { error: string }> {
  try {
    return { scores: parseJudgeAnswer(await judge(system, prompt), criteria) };
  } catch (err) {
    if (err instanceof JudgeCallError || err instanceof JudgeAnswerError) return { error: err.message };
    throw err;
  }
}
