import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLAUDE_SESSION_DIR } from '../../src/runtimes/claude-code.js';
import type { SandboxSpec } from '../../src/sandbox/driver.js';
import { type Harness, startHarness, waitFor } from '../support/harness.js';
import { claudeLines, promptOf, ScriptedDriver } from '../support/scripted-driver.js';

// Conversations through /v1/chat/completions: how a follow-up is recognised, what its sandbox is
// given, one turn at a time, tenancy. The sandbox is scripted (it plays claude's stream-json with
// session "s1", and collecting any directory gives hello.txt); Redis, BullMQ and the server are real.
let h: Harness;
const driver = new ScriptedDriver(
  (spec) =>
    claudeLines({ steps: 1, delayMs: promptOf(spec).includes('slowly') ? 3000 : 0, text: 'all done' }),
  // Saving a turn's CLI session files for the next turn takes a while when its prompt says so.
  (spec, dir) => (dir === CLAUDE_SESSION_DIR && promptOf(spec).includes('slow save') ? 1500 : 0),
);

const RUNBOOK = [
  '---',
  'agent: claude-code',
  '---',
  '# Notes',
  '',
  'Write notes about {{topic}} for {{reader}}.',
  '',
].join('\n');

beforeAll(async () => {
  // Sweeps often: a sandbox whose run has ended but whose files are still being saved is not an orphan.
  h = await startHarness({ driver, env: { CONVERSATION_MAX_TURNS: '3', SANDBOX_SWEEP_MS: '500' } });
  const res = await h.postJson(`${h.url}/api/v1/tasks/${h.collection}`, {
    name: 'notes',
    description: 'notes about a topic',
    workflow: {
      steps: ['run'],
      step_configs: { run: { activity: 'runbook' } },
      init_params: {
        instruction: RUNBOOK,
        model_provider: 'simulated',
        vars: { topic: 'nothing', reader: 'anyone' },
      },
    },
  });
  expect(res.status).toBe(201);
});
afterAll(async () => {
  await h?.stop();
});

type Message = { role: string; content: string };

interface Answer {
  status: number;
  body: any;
  spec: SandboxSpec | undefined;
}

/** One non-streaming request, and the sandbox spec of the run it started (once started). */
async function chat(body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await h.postJson(`${h.url}/v1/chat/completions`, { stream: false, ...body }, headers);
  const json = (await res.json()) as any;
  const runId = json.jetty_metadata?.trajectory_id as string | undefined;
  const spec = runId ? driver.started.find((s) => s.runId === runId) : undefined;
  return { status: res.status, body: json, spec };
}

const content = (a: Answer): string => a.body.choices[0].message.content;
const runOf = async (id: string) => (await (await h.fetch(`${h.url}/v1/runs/${id}`)).json()) as any;
const fileText = (spec: SandboxSpec, p: string) => {
  const f = spec.files.find((x) => x.path === p);
  return f === undefined ? undefined : Buffer.from(f.content).toString('utf8');
};

describe('a task as a model', () => {
  it('takes template variables from a ```vars block, and the rest of the message as the input', async () => {
    const a = await chat({
      model: 'task/notes',
      messages: [{ role: 'user', content: '```vars\ntopic: whales\nreader: "a child"\n```\nKeep it short.' }],
    });
    expect(a.status).toBe(200);
    const prompt = promptOf(a.spec!);
    expect(prompt).toContain('Write notes about whales for a child.');
    expect(prompt).toContain('Keep it short.');
    expect(prompt).not.toContain('```vars');
  });

  it('takes leading `name: value` lines for names the runbook uses, else the task defaults', async () => {
    const a = await chat({
      model: 'task/notes',
      messages: [{ role: 'user', content: 'topic: owls\nnote: this line is prose\nGo.' }],
    });
    const prompt = promptOf(a.spec!);
    expect(prompt).toContain('Write notes about owls for anyone.');
    expect(prompt).toContain('note: this line is prose');
  });

  it('404 naming /v1/models for a task that does not exist', async () => {
    const a = await chat({ model: 'task/nope', messages: [{ role: 'user', content: 'hi' }] });
    expect(a.status).toBe(404);
    expect(a.body.error).toMatchObject({ code: 'model_not_found', param: 'model' });
    expect(a.body.error.message).toContain('GET /v1/models');
  });
});

describe('a follow-up', () => {
  it("continues from the marker a chat client sends back: new sandbox with turn 1's files, the session resumed, only the new message", async () => {
    const first: Message = { role: 'user', content: 'topic: seals' };
    const t1 = await chat({ model: 'task/notes', messages: [first] });
    expect(t1.status).toBe(200);
    const id1 = t1.body.jetty_metadata.trajectory_id as string;
    expect(content(t1)).toBe(`all done\n\n[//]: # (jetty:run:${id1})`);
    expect(t1.body.jetty_metadata.conversation_id).toBe(id1);

    const t2 = await chat({
      model: 'task/notes',
      messages: [
        first,
        { role: 'assistant', content: content(t1) },
        { role: 'user', content: 'Now shorter.' },
      ],
    });
    expect(t2.status).toBe(200);
    const id2 = t2.body.jetty_metadata.trajectory_id as string;
    expect(id2).not.toBe(id1);
    expect(t2.body.jetty_metadata.conversation_id).toBe(id1);
    const spec = t2.spec!;
    expect(promptOf(spec)).toBe('Now shorter.\n');
    expect(spec.argv).toContain('--resume=s1');
    // What turn 1 left in /app and in the CLI's session directory, placed before the agent starts.
    expect(fileText(spec, '/app/hello.txt')).toBe('hi\n');
    expect(fileText(spec, `${CLAUDE_SESSION_DIR}/hello.txt`)).toBe('hi\n');
    expect(await runOf(id2)).toMatchObject({
      turn: 2,
      parent_run_id: id1,
      conversation_id: id1,
      session_id: 's1',
      resumed: true,
    });

    const conv = (await (await h.fetch(`${h.url}/v1/conversations/${id1}`)).json()) as any;
    expect(conv).toMatchObject({ id: id1, object: 'conversation', task: 'notes', active_run_id: null });
    expect(conv.turns.map((t: any) => [t.run_id, t.turn, t.message, t.answer])).toEqual([
      [id1, 1, 'Execute the runbook.', 'all done'],
      [id2, 2, 'Now shorter.', 'all done'],
    ]);
  });

  it('answers a turn before its files are saved for the next one, and a follow-up sent at once waits for them', async () => {
    const t1 = await chat({
      model: 'task/notes',
      messages: [{ role: 'user', content: 'topic: a slow save' }],
    });
    const answeredAt = Date.now();
    expect(t1.status).toBe(200);
    const id1 = t1.body.jetty_metadata.trajectory_id as string;
    // The answer came while the session files were still being copied out.
    expect(driver.collectedAt.get(`${id1} ${CLAUDE_SESSION_DIR}`)).toBeUndefined();

    const t2 = await chat({
      model: 'task/notes',
      messages: [{ role: 'user', content: 'Now shorter.' }],
      jetty: { continue_from: id1, model_provider: 'simulated' },
    });
    expect(t2.status).toBe(200);
    expect(driver.collectedAt.get(`${id1} ${CLAUDE_SESSION_DIR}`)).toBeGreaterThan(answeredAt);
    // Planned once they were saved: resumed, with turn 1's session files in its sandbox.
    expect(promptOf(t2.spec!)).toBe('Now shorter.\n');
    expect(fileText(t2.spec!, `${CLAUDE_SESSION_DIR}/hello.txt`)).toBe('hi\n');
    const run2 = await runOf(t2.body.jetty_metadata.trajectory_id);
    expect(run2).toMatchObject({ turn: 2, parent_run_id: id1, resumed: true });
    expect((run2.warnings ?? []).map((w: any) => w.code)).not.toContain('conversation_not_resumed');
    expect(await runOf(id1)).toMatchObject({ conversation_state: { files: 2, dropped: 0 } });
    expect(driver.removedById).not.toContain(id1);
  });

  it('continues by X-Conversation-Id (its latest turn) and by jetty.continue_from; a runbook answer has no marker', async () => {
    const t1 = await chat({
      model: 'claude-sonnet-4-6',
      messages: [
        { role: 'system', content: '# Hello\nSay hi.' },
        { role: 'user', content: 'Go.' },
      ],
      jetty: { runbook: true, model_provider: 'simulated' },
    });
    const id1 = t1.body.jetty_metadata.trajectory_id as string;
    expect(content(t1)).toBe('all done');

    const t2 = await chat(
      { model: 'claude-sonnet-4-6', messages: [{ role: 'user', content: 'Again.' }] },
      { 'x-conversation-id': id1 },
    );
    expect(t2.status).toBe(200);
    const id2 = t2.body.jetty_metadata.trajectory_id as string;
    expect(promptOf(t2.spec!)).toBe('Again.\n');
    expect(await runOf(id2)).toMatchObject({ turn: 2, parent_run_id: id1 });

    const t3 = await chat({
      model: 'claude-sonnet-4-6',
      messages: [{ role: 'user', content: 'Once more.' }],
      jetty: { continue_from: id2, model_provider: 'simulated' },
    });
    expect(t3.status).toBe(200);
    expect(await runOf(t3.body.jetty_metadata.trajectory_id)).toMatchObject({ turn: 3, parent_run_id: id2 });
    expect(content(t3)).toBe('all done');

    // CONVERSATION_MAX_TURNS is 3 here.
    const t4 = await chat(
      { model: 'claude-sonnet-4-6', messages: [{ role: 'user', content: 'And again.' }] },
      { 'x-conversation-id': id1 },
    );
    expect(t4.status).toBe(409);
    expect(t4.body.error.code).toBe('conversation_too_long');
    expect(t4.body.error.message).toContain('CONVERSATION_MAX_TURNS');
    expect(t4.body.jetty_metadata).toBeUndefined();
  });

  it('400 when nothing new follows the answer it continues', async () => {
    const first: Message = { role: 'user', content: 'topic: crabs' };
    const t1 = await chat({ model: 'task/notes', messages: [first] });
    const again = await chat({
      model: 'task/notes',
      messages: [first, { role: 'assistant', content: content(t1) }],
    });
    expect(again.status).toBe(400);
    expect(again.body.error).toMatchObject({ code: 'no_new_message', param: 'messages' });
  });
});

describe('one turn at a time, and tenancy', () => {
  it('409 while the turn runs (naming it), the follow-up once it ended; 404 from another collection', async () => {
    const t1 = await chat({ model: 'task/notes', messages: [{ role: 'user', content: 'topic: eels' }] });
    const id1 = t1.body.jetty_metadata.trajectory_id as string;
    // timeout_hint 0: answered 202 at once, while the (slow) turn runs.
    const slow = await chat({
      model: 'task/notes',
      messages: [{ role: 'user', content: 'Again, slowly.' }],
      jetty: { continue_from: id1, model_provider: 'simulated', timeout_hint: 0 },
    });
    expect(slow.status).toBe(202);
    const id2 = slow.body.jetty_metadata.trajectory_id as string;

    const queued = await h.jobsEnqueued();
    const busy = await chat(
      { model: 'task/notes', messages: [{ role: 'user', content: 'Hello?' }] },
      {
        'x-conversation-id': id1,
      },
    );
    expect(busy.status).toBe(409);
    expect(busy.body.error.code).toBe('conversation_busy');
    expect(busy.body.error.message).toContain(id2);
    expect(busy.body.jetty_metadata).toBeUndefined();

    const other = await h.addCollection('other-collection');
    const foreign = await chat(
      {
        model: 'task/notes',
        messages: [{ role: 'user', content: 'Hello?' }],
        jetty: { continue_from: id1, model_provider: 'simulated' },
      },
      other.auth,
    );
    expect(foreign.status).toBe(404);
    const byHeader = await chat(
      { model: 'gpt-5.5', messages: [{ role: 'user', content: 'Hello?' }] },
      {
        ...other.auth,
        'x-conversation-id': id1,
      },
    );
    expect(byHeader.status).toBe(404);
    expect(byHeader.body.error.code).toBe('conversation_not_found');
    expect((await fetch(`${h.url}/v1/conversations/${id1}`, { headers: other.auth })).status).toBe(404);
    expect(await h.jobsEnqueued()).toBe(queued);

    await waitFor(async () => (await runOf(id2)).status === 'completed', 15_000, 'turn 2 to end');
    const next = await chat(
      { model: 'task/notes', messages: [{ role: 'user', content: 'Hello?' }] },
      {
        'x-conversation-id': id1,
      },
    );
    expect(next.status).toBe(200);
    expect(await runOf(next.body.jetty_metadata.trajectory_id)).toMatchObject({
      turn: 3,
      parent_run_id: id2,
    });
  });
});
