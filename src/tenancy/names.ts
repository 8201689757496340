/**
 * The names tenancy stores things under: collection names (Jetty's rule) and environment
 * variable names. Both end up inside Redis key names and URLs, so they are checked before any
 * read or write, and a wrong one is explained by the rule it breaks.
 */
import { badRequest, quoted } from '../errors.js';
import { ENV_NAME_RE } from '../runbook/schema.js';

export const COLLECTION_NAME_MIN = 3;
export const COLLECTION_NAME_MAX = 48;

/** Jetty's rule, stated once so every message can repeat it. */
export const COLLECTION_NAME_RULE =
  `${COLLECTION_NAME_MIN}–${COLLECTION_NAME_MAX} characters of letters, digits, "-" and "_", ` +
  'starting and ending with a letter or digit, with no two "-"/"_" in a row (e.g. "acme", "team-data_2")';

/** The same rule as one pattern (for schemas); `collectionNameProblem` explains a failure. */
export const COLLECTION_NAME_RE = new RegExp(
  `^(?=.{${COLLECTION_NAME_MIN},${COLLECTION_NAME_MAX}}$)[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*$`,
);

/** Longest variable name accepted; far above any real one, low enough to keep keys small. */
export const ENV_NAME_MAX = 128;
export const ENV_NAME_RULE =
  'letters, digits and "_", not starting with a digit (e.g. "OPENAI_API_KEY"), ' +
  `at most ${ENV_NAME_MAX} characters`;

/** What is wrong with a collection name, or null when it follows the rule. */
export function collectionNameProblem(name: unknown): string | null {
  if (typeof name !== 'string') return `A collection name must be a string: ${COLLECTION_NAME_RULE}.`;
  const subject = `The collection name ${quoted(name)}`;
  if (name.length < COLLECTION_NAME_MIN || name.length > COLLECTION_NAME_MAX) {
    return `${subject} has ${name.length} characters; a name is ${COLLECTION_NAME_RULE}.`;
  }
  const bad = /[^A-Za-z0-9_-]/.exec(name);
  if (bad) {
    return `${subject} contains ${JSON.stringify(bad[0])} at position ${bad.index + 1}; a name is ${COLLECTION_NAME_RULE}.`;
  }
  if (/^[-_]/.test(name)) return `${subject} starts with a separator; a name is ${COLLECTION_NAME_RULE}.`;
  if (/[-_]$/.test(name)) return `${subject} ends with a separator; a name is ${COLLECTION_NAME_RULE}.`;
  const twice = /[-_]{2}/.exec(name);
  if (twice) {
    return `${subject} has two separators in a row (${JSON.stringify(twice[0])}); a name is ${COLLECTION_NAME_RULE}.`;
  }
  return null;
}

export function isCollectionName(name: unknown): name is string {
  return collectionNameProblem(name) === null;
}

/** Returns the name, or throws a 400 naming `param` and the rule. */
export function assertCollectionName(name: unknown, param = 'name'): string {
  const problem = collectionNameProblem(name);
  if (problem !== null) throw badRequest(problem, param, 'invalid_collection_name');
  return name as string;
}

/** What is wrong with an environment variable name, or null when it is usable. */
export function envNameProblem(name: string): string | null {
  if (name.length === 0) return `An environment variable name cannot be empty; names are ${ENV_NAME_RULE}.`;
  if (name.length > ENV_NAME_MAX || !ENV_NAME_RE.test(name)) {
    return `${quoted(name)} is not a usable environment variable name; names are ${ENV_NAME_RULE}.`;
  }
  return null;
}

export const TASK_NAME_MAX = 100;
export const TASK_NAME_RULE =
  `1–${TASK_NAME_MAX} characters of letters, digits, ".", "-" and "_", starting with a letter or digit ` +
  '(e.g. "hello", "weekly-report.v2")';

/** What is wrong with a task name, or null. Names starting with "_" are the server's own (`_chat`). */
export function taskNameProblem(name: unknown): string | null {
  if (typeof name !== 'string' || name.length === 0) return `A task name is ${TASK_NAME_RULE}.`;
  if (name.length > TASK_NAME_MAX || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    return `The task name ${quoted(name)} is not usable; a task name is ${TASK_NAME_RULE}.`;
  }
  return null;
}
