import Dockerode from 'dockerode';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, startHarness, waitFor } from '../support/harness.js';
import { isUnclaimedWarm } from '../support/sandboxes.js';
import { readSse } from '../support/sse.js';

// Conversations end to end: a chat client picks a task as its model and talks to it over two
// turns, the way Open WebUI does (the whole history resent, nothing but model and messages in the
// body). The real server, Redis, Docker engine and agent CLIs; only the model is simulated, and it
// answers the second user message only when the CLI resent the first turn (its resumed session).
const docker = new Dockerode();
let h: Harness;
let client: OpenAI;

beforeAll(async () => {
  h = await startHarness();
  client = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: h.key, maxRetries: 0 });
}, 120_000);

afterEach(async () => {
  // Warm sandboxes no run has claimed stay with the pool (the harness checks they go at its stop).
  const owned = async () =>
    (await docker.listContainers({ all: true, filters: { label: [`jetty.instance=${h.instance}`] } })).filter(
      (c) => !isUnclaimedWarm(c),
    );
  await waitFor(async () => (await owned()).length === 0, 10_000, 'sandboxes to be removed').catch(
    () => undefined,
  );
  const left = await owned();
  for (const c of left) await docker.getContainer(c.Id).remove({ force: true });
  expect(left.map((c) => c.Names)).toEqual([]);
}, 30_000);

afterAll(async () => {
  await h?.stop();
});

/** Turn 1 writes /app/notes.txt (and the artifact); turn 2 reads it back. */
function notesRunbook(agent: string, extra: string[] = []): string {
  return [
    '---',
    `agent: ${agent}`,
    '---',
    '# Notes',
    '',
    'Write the notes about {{topic}}.',
    '',
    '## REQUIRED OUTPUT FILES',
    '| File | Description |',
    '|---|---|',
    '| `{{results_dir}}/notes.txt` | the notes |',
    '',
    '```simulate',
    ...extra,
    '- run: mkdir -p {{results_dir}} && echo notes-about-{{topic}} > /app/notes.txt && cp /app/notes.txt {{results_dir}}/notes.txt',
    '- say: wrote the notes',
    '- await_user: the user asks what the notes say',
    '- run: cat /app/notes.txt',
    '- say: read the notes back',
    '```',
    '',
  ].join('\n');
}

async function createTask(name: string, runbook: string): Promise<void> {
  const res = await h.postJson(`${h.url}/api/v1/tasks/${h.collection}`, {
    name,
    description: `notes on ${name}`,
    workflow: {
      steps: ['run'],
      step_configs: { run: { activity: 'runbook' } },
      init_params: { instruction: runbook, model_provider: 'simulated', vars: { topic: 'default' } },
    },
  });
  expect(res.status, await res.clone().text()).toBe(201);
}

interface Ev {
  type: string;
  data: Record<string, any>;
}

async function trajectory(runId: string): Promise<{ run: Record<string, any>; input: any; events: Ev[] }> {
  const res = await h.fetch(`${h.url}/v1/runs/${runId}/trajectory`);
  expect(res.status).toBe(200);
  return (await res.json()) as { run: Record<string, any>; input: any; events: Ev[] };
}

/** Streams one answer with the official client, as a chat UI does; returns its text and run. */
async function ask(
  model: string,
  messages: OpenAI.ChatCompletionMessageParam[],
): Promise<{ content: string; runId: string; conversationId: string; finish: string | null }> {
  const stream = await client.chat.completions.create({ model, messages, stream: true });
  let content = '';
  let finish: string | null = null;
  let runId = '';
  let conversationId = '';
  for await (const chunk of stream) {
    const meta = (chunk as unknown as { jetty_metadata?: Record<string, string> }).jetty_metadata;
    if (meta?.trajectory_id) runId = meta.trajectory_id;
    if (meta?.conversation_id) conversationId = meta.conversation_id;
    content += chunk.choices[0]?.delta.content ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  return { content, runId, conversationId, finish };
}

const toolOutputs = (events: Ev[]) =>
  events.filter((e) => e.type === 'tool.result').map((e) => String(e.data.output));

describe('tasks as models', () => {
  it('lists the task in GET /v1/models and runs it from the official openai client with no extra body', async () => {
    await createTask('notes-claude', notesRunbook('claude-code'));
    const models = await client.models.list();
    const listed = models.data.find((m) => m.id === 'task/notes-claude') as unknown as {
      task: { runtime: string; model: string };
    };
    expect(listed?.task).toMatchObject({ runtime: 'claude-code', model: 'claude-sonnet-4-6' });

    const turn = await ask('task/notes-claude', [
      { role: 'user', content: 'topic: apples\n\nPlease write them.' },
    ]);
    expect(turn.finish).toBe('stop');
    expect(turn.content).toContain('wrote the notes');
    // The marker that lets the next message continue this run, hidden by markdown renderers.
    expect(turn.content.trimEnd().endsWith(`[//]: # (jetty:run:${turn.runId})`)).toBe(true);
    const { run, input } = await trajectory(turn.runId);
    expect(run.status).toBe('completed');
    expect(run.task).toBe('notes-claude');
    expect(input.instruction).toBe('Please write them.');
    const art = (await (await h.fetch(`${h.url}/v1/runs/${turn.runId}/artifacts`)).json()) as {
      data: Array<{ path: string; url: string }>;
    };
    expect(art.data.map((a) => a.path)).toEqual(['notes.txt']);
    const file = await h.fetch(`${h.url}${art.data[0]!.url}`);
    expect((await file.text()).trim()).toBe('notes-about-apples');
  }, 180_000);
});

describe('a two-turn conversation', () => {
  for (const agent of ['claude-code', 'codex', 'gemini-cli', 'opencode']) {
    it(`${agent}: turn 2 resumes the same CLI session and reads the file turn 1 wrote`, async () => {
      const task = `notes-${agent}-2`;
      await createTask(task, notesRunbook(agent));
      const first: OpenAI.ChatCompletionMessageParam = { role: 'user', content: 'topic: pears' };
      const t1 = await ask(`task/${task}`, [first]);
      expect(t1.content).toContain('wrote the notes');
      // The client resends the whole history, the answer with its marker as received.
      const t2 = await ask(`task/${task}`, [
        first,
        { role: 'assistant', content: t1.content },
        { role: 'user', content: 'What do the notes say?' },
      ]);
      expect(t2.finish).toBe('stop');
      expect(t2.content).toContain('read the notes back');
      expect(t2.runId).not.toBe(t1.runId);
      expect(t2.conversationId).toBe(t1.conversationId);

      const one = await trajectory(t1.runId);
      const two = await trajectory(t2.runId);
      expect(two.run).toMatchObject({
        status: 'completed',
        turn: 2,
        parent_run_id: t1.runId,
        conversation_id: t1.conversationId,
        resumed: true,
      });
      expect(one.run.session_id).toEqual(expect.any(String));
      expect(two.run.session_id).toBe(one.run.session_id);
      // Only the new message is the turn's input; the CLI's session brings the rest.
      expect(two.input.instruction).toBe('What do the notes say?');
      expect(two.input.history).toBeUndefined();
      // The agent of turn 2 read the file turn 1 wrote, in a new sandbox.
      expect(toolOutputs(two.events).join('\n')).toContain('notes-about-pears');
      expect(two.events.filter((e) => e.type === 'run.warning')).toEqual([]);

      const conv = (await (await h.fetch(`${h.url}/v1/conversations/${t1.conversationId}`)).json()) as {
        turns: Array<{ run_id: string; turn: number; message: string; resumed: boolean; answer: string }>;
      };
      expect(conv.turns.map((t) => [t.run_id, t.turn, t.resumed])).toEqual([
        [t1.runId, 1, false],
        [t2.runId, 2, true],
      ]);
      expect(conv.turns[1]!.message).toBe('What do the notes say?');
      expect(conv.turns[0]!.answer).not.toContain('jetty:run:');
    }, 300_000);
  }

  it('hermes (cannot resume): turn 2 gets the earlier turn summarized, a warning, and the files', async () => {
    await createTask('notes-hermes', notesRunbook('hermes'));
    const first: OpenAI.ChatCompletionMessageParam = { role: 'user', content: 'topic: plums' };
    const t1 = await ask('task/notes-hermes', [first]);
    expect(t1.content).toContain('wrote the notes');
    const t2 = await ask('task/notes-hermes', [
      first,
      { role: 'assistant', content: t1.content },
      { role: 'user', content: 'What do the notes say?' },
    ]);
    expect(t2.content).toContain('read the notes back');
    const two = await trajectory(t2.runId);
    expect(two.run).toMatchObject({ status: 'completed', turn: 2, resumed: false });
    const warnings = two.events.filter((e) => e.type === 'run.warning').map((e) => e.data);
    expect(warnings).toEqual([expect.objectContaining({ code: 'conversation_not_resumed' })]);
    expect(warnings[0]!.message).toMatch(/hermes cannot resume/);
    expect(two.input.instruction).toBe('What do the notes say?');
    expect(two.input.history).toContain('--- Turn 1');
    expect(two.input.history).toContain('wrote the notes');
    expect(toolOutputs(two.events).join('\n')).toContain('notes-about-plums');
  }, 300_000);
});

describe('one turn at a time, and tenancy', () => {
  it('409 while a turn runs, 404 from another collection, and the follow-up goes through once it ended', async () => {
    await createTask('notes-slow', notesRunbook('claude-code', ['- sleep_ms: 6000']));
    const first: OpenAI.ChatCompletionMessageParam = { role: 'user', content: 'topic: figs' };
    const res = await h.postJson(`${h.url}/v1/chat/completions`, {
      model: 'task/notes-slow',
      stream: true,
      messages: [first],
    });
    expect(res.status).toBe(200);
    const events = readSse(res.body!);
    const head = JSON.parse((await events.next()).value!.data) as {
      jetty_metadata: { trajectory_id: string; conversation_id: string };
    };
    const runId = head.jetty_metadata.trajectory_id;
    const conv = head.jetty_metadata.conversation_id;
    expect(conv).toBe(runId);

    const followUp = (headers: Record<string, string>, jetty?: Record<string, unknown>) =>
      fetch(`${h.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({
          model: 'task/notes-slow',
          stream: false,
          messages: [{ role: 'user', content: 'What do the notes say?' }],
          ...(jetty ? { jetty } : {}),
        }),
      });
    const busy = await followUp({ ...h.auth, 'x-conversation-id': conv });
    const busyBody = (await busy.json()) as { error: { code: string; message: string } };
    expect(busy.status).toBe(409);
    expect(busyBody.error.code).toBe('conversation_busy');
    expect(busyBody.error.message).toContain(runId);

    const other = await h.addCollection('other-collection');
    const foreign = await followUp(other.auth, { continue_from: runId, model_provider: 'simulated' });
    expect(foreign.status).toBe(404);
    expect(((await foreign.json()) as { error: { code: string } }).error.code).toBe('run_not_found');
    const byHeader = await followUp({ ...other.auth, 'x-conversation-id': conv });
    expect(byHeader.status).toBe(404);
    expect((await fetch(`${h.url}/v1/conversations/${conv}`, { headers: other.auth })).status).toBe(404);
    expect(((await (await h.fetch(`${h.url}/v1/conversations/${conv}`)).json()) as any).active_run_id).toBe(
      runId,
    );

    for await (const ev of events) if (ev.data === '[DONE]') break;
    const next = await followUp({ ...h.auth, 'x-conversation-id': conv });
    const answer = (await next.json()) as {
      choices: Array<{ message: { content: string } }>;
      jetty_metadata: { trajectory_id: string; conversation_id: string; status: string };
    };
    expect(next.status).toBe(200);
    expect(answer.jetty_metadata.conversation_id).toBe(conv);
    expect(answer.jetty_metadata.status).toBe('completed');
    expect(answer.choices[0]!.message.content).toContain('read the notes back');
  }, 240_000);
});
