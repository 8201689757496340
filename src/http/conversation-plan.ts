/**
 * Which run a chat completions request starts, conversations included:
 *
 * - a follow-up (the request continues an earlier turn: `jetty.continue_from`, an
 *   `X-Conversation-Id` header, or the marker an earlier answer ended with) becomes the next turn of
 *   that conversation, made from its first turn's job, with only the new user message as input;
 * - a request naming a task as its model (`task/<name>`) and no `jetty` block runs that task;
 * - a request with a `jetty` block runs its runbook, as before;
 * - anything else is a passthrough call (null).
 *
 * Every run started here is a conversation's turn: its files and CLI session are kept when it
 * ends, so that any of them can be continued. Answers to requests without a `jetty` block (chat
 * clients) end with the marker that lets the client's next message continue them.
 */
import { summarizeHistory } from '../conversations/history.js';
import {
  type ChatTurnMessage,
  conversationMarker,
  followUpOf,
  lastAnswerIndex,
  userTextAfter,
} from '../conversations/marker.js';
import { varsFromMessage } from '../conversations/vars.js';
import { AppError, badRequest, conflict, notFound, quoted } from '../errors.js';
import type { RunWarning } from '../events/types.js';
import { resolveAssets } from '../jetty/assets.js';
import { chatRequestOf, mergeInitParams } from '../jetty/workflow.js';
import { isPlainObject } from '../json.js';
import type { ConversationBase, ConversationRecord } from '../queue/conversation-store.js';
import { type NewRun, newRunId, type RunView } from '../queue/run-service.js';
import { parametersTable } from '../runbook/parameters.js';
import { templateVariablesIn } from '../runbook/template.js';
import { getRuntime } from '../runtimes/registry.js';
import { checkDailyLimit } from './budget-preflight.js';
import type { AppDeps } from './deps.js';
import { type CollectionContext, type PlannedRun, planRun } from './preflight.js';
import type { ChatRequest } from './schemas.js';

/** A model naming a task: `task/<name>`. */
export const TASK_MODEL_PREFIX = 'task/';

/** CONVERSATION_HISTORY_MAX_BYTES and CONVERSATION_MAX_TURNS defaults, for an app built without them. */
export const DEFAULT_CONVERSATION_SETTINGS = { historyMaxBytes: 32 * 1024, maxTurns: 100 };

export interface StartedRun {
  record: RunView;
  stream: boolean;
  /** The model the run's chunks name. */
  model: string;
  timeoutHintSec: number;
  /** Appended to the answer (requests without a `jetty` block): the marker a chat client sends back. */
  trailer: string | null;
}

interface RequestMeta {
  idempotencyKey?: string | undefined;
  /** The `X-Conversation-Id` header. */
  conversationId?: string | undefined;
}

/** Starts the run the request asks for; null: no run, a passthrough call. */
export async function startChatRun(
  body: ChatRequest,
  meta: RequestMeta,
  deps: AppDeps,
  ctx: CollectionContext,
): Promise<StartedRun | null> {
  const messages = body.messages.map((m) => ({ role: m.role, text: textOf(m.content) }));
  const follow = await findFollowUp(body, messages, meta, deps, ctx);
  if (follow) return startFollowUp(follow, body, meta, deps, ctx);
  const taskName = body.model?.startsWith(TASK_MODEL_PREFIX)
    ? body.model.slice(TASK_MODEL_PREFIX.length)
    : null;
  if (!body.jetty && taskName === null) return null;
  const plan = body.jetty
    ? await planJettyRun(body, deps, ctx)
    : await planTaskModelRun(taskName!, body, messages, deps, ctx);
  return startFirstTurn(plan, body, meta, deps);
}

function textOf(content: ChatRequest['messages'][number]['content']): string {
  if (content === null) return '';
  if (typeof content === 'string') return content;
  return content
    .filter((p) => p.type === 'text' && typeof p.text === 'string')
    .map((p) => p.text)
    .join('\n');
}

async function planJettyRun(body: ChatRequest, deps: AppDeps, ctx: CollectionContext): Promise<PlannedRun> {
  const assets = await resolveAssets(body.jetty?.file_paths ?? [], {
    collection: ctx.collection,
    runs: deps.runs,
    uploads: deps.uploads,
    param: 'jetty.file_paths',
  });
  return planRun(body, deps, ctx, { assets });
}

/**
 * A task as a model: the task's runbook with the user's messages as input, and template variables
 * from the message (a ```vars block, or leading `name: value` lines for names the runbook uses).
 */
async function planTaskModelRun(
  name: string,
  body: ChatRequest,
  messages: readonly ChatTurnMessage[],
  deps: AppDeps,
  ctx: CollectionContext,
): Promise<PlannedRun> {
  const task = await deps.tasks.find(ctx.collection, name);
  if (!task) {
    throw new AppError(
      `No task named ${quoted(name)} in this collection: the model ${TASK_MODEL_PREFIX}<name> runs one of its tasks. GET /v1/models lists them.`,
      { status: 404, type: 'invalid_request_error', code: 'model_not_found', param: 'model' },
    );
  }
  const init = isPlainObject(task.workflow.init_params) ? task.workflow.init_params : {};
  const runbook = typeof init.instruction === 'string' ? init.instruction : '';
  const known = new Set([...templateVariablesIn(runbook), ...parametersTable(runbook).map((p) => p.name)]);
  const { vars, text } = varsFromMessage(userTextAfter(messages, -1), known);
  const merged = mergeInitParams(task.workflow, {
    ...(Object.keys(vars).length > 0 ? { vars } : {}),
    prompt: text || 'Execute the runbook.',
  });
  const chat = chatRequestOf(task.workflow, merged, { collection: ctx.collection, task: task.name });
  const assets = await resolveAssets((merged.file_paths as unknown[] | undefined) ?? [], {
    collection: ctx.collection,
    runs: deps.runs,
    uploads: deps.uploads,
    param: 'jetty.file_paths',
  });
  return planRun({ ...chat, stream: body.stream === true }, deps, ctx, {
    assets,
    variablesField: 'messages.vars',
  });
}

async function startFirstTurn(
  plan: PlannedRun,
  body: ChatRequest,
  meta: RequestMeta,
  deps: AppDeps,
): Promise<StartedRun> {
  // Refused before the run exists: a client told to retry must not leave a run behind.
  if (plan.stream || plan.timeoutHintSec > 0) deps.runs.assertFollowerRoom();
  const runId = newRunId();
  const job: NewRun = {
    ...plan.job,
    conversation: { id: runId, turn: 1, parentRunId: null, resumeSession: null, history: null },
  };
  const { record, created } = await deps.runs.create(job, {
    collection: plan.collection,
    task: plan.task,
    idempotencyKey: meta.idempotencyKey,
    initParams: plan.initParams,
    warnings: plan.warnings,
    runId,
  });
  if (created) {
    await deps.runs.conversations.create(
      { collection: plan.collection, task: plan.task, base: baseOf(job) },
      runId,
    );
  }
  return {
    record,
    stream: plan.stream,
    model: plan.job.model,
    timeoutHintSec: plan.timeoutHintSec,
    trailer: body.jetty ? null : conversationMarker(record.id),
  };
}

/** What every later turn is made from: the first turn's job, minus what was that run's alone. */
function baseOf(job: NewRun): ConversationBase {
  const { instruction: _i, assets: _a, webhook: _w, secretParams: _s, conversation: _c, ...base } = job;
  return base;
}

interface FollowUp {
  parent: RunView;
  conversation: ConversationRecord;
  /** The user's new message(s): the turn's only new input. */
  input: string;
}

/**
 * The turn a request continues, if it continues one. In order: `jetty.continue_from` (a run id),
 * the `X-Conversation-Id` header (its latest turn), the marker of the latest answer in the history
 * (what chat clients send back without knowing it). Another collection's run or conversation is
 * a 404, exactly like one that does not exist.
 */
async function findFollowUp(
  body: ChatRequest,
  messages: readonly ChatTurnMessage[],
  meta: RequestMeta,
  deps: AppDeps,
  ctx: CollectionContext,
): Promise<FollowUp | null> {
  const afterLastAnswer = () => userTextAfter(messages, lastAnswerIndex(messages));
  let runId: string;
  let input: string;
  let where: string;
  if (body.jetty?.continue_from !== undefined) {
    runId = body.jetty.continue_from;
    input = afterLastAnswer();
    where = '`jetty.continue_from`';
  } else if (meta.conversationId !== undefined) {
    const conv = await deps.runs.conversations.get(meta.conversationId);
    const turns = conv?.collection === ctx.collection ? await deps.runs.conversations.turns(conv.id) : [];
    const last = turns[turns.length - 1];
    if (last === undefined) {
      throw notFound(
        `No conversation ${quoted(meta.conversationId)} in this collection (X-Conversation-Id). A conversation's id is jetty_metadata.conversation_id of its first answer; it is kept for RETENTION_SEC after its last turn.`,
        'conversation_not_found',
      );
    }
    runId = last;
    input = afterLastAnswer();
    where = 'the X-Conversation-Id header';
  } else {
    const marked = followUpOf(messages);
    if (!marked) return null;
    ({ runId, input } = marked);
    where = 'the marker at the end of an earlier answer in `messages`';
  }
  const parent = await deps.runs.get(runId, ctx.collection);
  if (!parent) {
    throw notFound(
      `No run ${quoted(runId)} in this collection to continue (named by ${where}). Runs are kept for RETENTION_SEC after they end; start a new conversation (a new chat).`,
      'run_not_found',
    );
  }
  const conversation = parent.conversation_id
    ? await deps.runs.conversations.get(parent.conversation_id)
    : null;
  if (!conversation || conversation.collection !== ctx.collection) {
    throw badRequest(
      `The run ${parent.id} (named by ${where}) is not a conversation's turn: only runs started by /v1/chat/completions keep their files and agent session for a follow-up. Start a new conversation instead.`,
      'jetty.continue_from',
      'not_a_conversation',
    );
  }
  if (input === '') {
    throw badRequest(
      `Nothing new to continue run ${parent.id} with: a follow-up needs a user message after the answer it continues.`,
      'messages',
      'no_new_message',
    );
  }
  return { parent, conversation, input };
}

async function startFollowUp(
  follow: FollowUp,
  body: ChatRequest,
  meta: RequestMeta,
  deps: AppDeps,
  ctx: CollectionContext,
): Promise<StartedRun> {
  const { conversation } = follow;
  const parent = await savedTurn(follow.parent, deps, ctx.collection);
  const settings = deps.conversations ?? DEFAULT_CONVERSATION_SETTINGS;
  // A turn spends like any run: a collection past its daily limit is refused before it starts.
  checkDailyLimit(ctx.budget, ctx.collection);
  const resume = resumeOf(parent, conversation.base.agent);
  const warnings: RunWarning[] = [];
  let history: string | null = null;
  if (resume.session === null) {
    const h = await historyOf(parent, deps, ctx.collection, settings);
    history = h.text;
    warnings.push({
      code: 'conversation_not_resumed',
      message: `${resume.why} So this turn's agent starts a new session: the runbook, the ${h.included} earlier turn(s) summarized${h.omitted > 0 ? ` (${h.omitted} older one(s) left out: CONVERSATION_HISTORY_MAX_BYTES)` : ''} and the new message are its prompt. The files of the previous turn are in /app as it left them.`,
    });
  }
  const runId = newRunId();
  await claimTurn(conversation.id, runId, deps, settings.maxTurns);
  const job: NewRun = {
    ...conversation.base,
    instruction: follow.input,
    assets: [],
    conversation: {
      id: conversation.id,
      turn: (parent.turn ?? 1) + 1,
      parentRunId: parent.id,
      resumeSession: resume.session,
      history,
    },
  };
  try {
    // Refused before the run exists (the claim goes back): a client told to retry leaves none.
    if (body.stream === true || (body.jetty?.timeout_hint ?? deps.defaults.timeoutHintSec) > 0)
      deps.runs.assertFollowerRoom();
    const { record, created } = await deps.runs.create(job, {
      collection: ctx.collection,
      task: conversation.task,
      idempotencyKey: meta.idempotencyKey,
      warnings,
      runId,
    });
    // A repeated request (same idempotency key) started nothing: the claim goes back.
    if (!created) await deps.runs.conversations.release(conversation.id, runId);
    return {
      record,
      stream: body.stream === true,
      model: job.model,
      timeoutHintSec: body.jetty?.timeout_hint ?? deps.defaults.timeoutHintSec,
      trailer: body.jetty ? null : conversationMarker(record.id),
    };
  } catch (err) {
    await deps.runs.conversations.release(conversation.id, runId);
    throw err;
  }
}

/** How long a follow-up waits for the previous turn's files to be saved (a worker gone mid-save never clears it). */
const SAVE_WAIT_MS = 20_000;
const SAVE_POLL_MS = 20;

/**
 * The previous turn once its files for this one are saved: its worker saves them just after its
 * end is announced, so a follow-up sent at once may find it still saving. Past SAVE_WAIT_MS the
 * turn is taken as it is (without saved files: the follow-up starts from its summary and says so).
 */
async function savedTurn(parent: RunView, deps: AppDeps, collection: string): Promise<RunView> {
  let run = parent;
  for (const until = Date.now() + SAVE_WAIT_MS; run.conversation_saving === true && Date.now() < until; ) {
    await new Promise((resolve) => setTimeout(resolve, SAVE_POLL_MS));
    run = (await deps.runs.get(run.id, collection)) ?? run;
  }
  return run;
}

/** Whether the turn can resume the previous turn's CLI session, and if not, why not. */
function resumeOf(parent: RunView, agent: NewRun['agent']): { session: string | null; why: string } {
  const runtime = getRuntime(agent);
  if (!runtime?.capabilities.resume) {
    return { session: null, why: `The runtime ${agent} cannot resume its CLI's session headless.` };
  }
  if (!parent.session_id) {
    return {
      session: null,
      why: `The previous turn (run ${parent.id}) ended before its agent CLI named a session.`,
    };
  }
  if (!parent.conversation_state) {
    return {
      session: null,
      why: `The previous turn (run ${parent.id}) kept no files for the next one (CONVERSATION_STATE_MAX_BYTES is 0, or saving them failed: see the worker's log).`,
    };
  }
  return { session: parent.session_id, why: '' };
}

async function claimTurn(
  conversationId: string,
  runId: string,
  deps: AppDeps,
  maxTurns: number,
): Promise<void> {
  const claim = await deps.runs.conversations.claim(conversationId, runId, maxTurns);
  if (claim.ok) return;
  if (claim.reason === 'busy') {
    throw conflict(
      `The conversation ${conversationId} has a turn still under way (run ${claim.activeRunId}): one turn at a time. Wait for it to end (GET /v1/runs/${claim.activeRunId}), or cancel it (POST /v1/runs/${claim.activeRunId}/cancel), then send the message again.`,
      'conversation_busy',
    );
  }
  if (claim.reason === 'full') {
    throw conflict(
      `The conversation ${conversationId} has ${claim.turns} turns, the most this server allows (CONVERSATION_MAX_TURNS). Start a new conversation.`,
      'conversation_too_long',
    );
  }
  throw notFound(
    `The conversation ${conversationId} is not kept any more; start a new one.`,
    'conversation_not_found',
  );
}

/** The earlier turns from the first to `parent`, summarized within CONVERSATION_HISTORY_MAX_BYTES. */
async function historyOf(
  parent: RunView,
  deps: AppDeps,
  collection: string,
  settings: { historyMaxBytes: number; maxTurns: number },
) {
  const chain: Array<{ turn: number; message: string; answer: string | null; status: string }> = [];
  let run: RunView | null = parent;
  while (run && chain.length < settings.maxTurns) {
    const input = await deps.runs.input(run.id);
    chain.unshift({
      turn: run.turn ?? 1,
      message: input && 'instruction' in input ? input.instruction : '',
      answer: run.final_text,
      status: run.status,
    });
    run = run.parent_run_id ? await deps.runs.get(run.parent_run_id, collection) : null;
  }
  return summarizeHistory(chain, settings.historyMaxBytes);
}
