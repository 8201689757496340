import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, runbookRequest, startHarness } from '../support/harness.js';
import { claudeLines, ScriptedDriver } from '../support/scripted-driver.js';

// The API's access log as an operator reads it: one line per request, written when it is
// answered, with what was asked and how it went; and one for a stream its client left.
const RUNBOOK = '# Log\n\nWrite /app/results/out.txt.\n';
const logFile = `/tmp/jetty-request-log-${randomBytes(4).toString('hex')}.log`;
let h: Harness;

interface Line {
  msg: string;
  reqId?: string;
  req?: { method: string; url: string };
  res?: { statusCode: number };
  responseTime?: number;
}

const ACCESS = ['incoming request', 'request completed', 'request errored', 'stream closed by the client'];

/** The access-log lines of one request (its handlers log other lines with its id too). */
async function linesOf(reqId: string): Promise<Line[]> {
  const text = await readFile(logFile, 'utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line)
    .filter((l) => l.reqId === reqId && ACCESS.includes(l.msg));
}

beforeAll(async () => {
  h = await startHarness({
    driver: new ScriptedDriver(() => claudeLines({ steps: 4, delayMs: 400 })),
    logFile,
  });
});

afterAll(async () => {
  await h?.stop();
});

describe('request log', () => {
  it('logs a request once, when answered, with its method, URL, status and time', async () => {
    const res = await h.fetch(`${h.url}/v1/models`, { headers: { 'x-request-id': 'log-models-1' } });
    expect(res.status).toBe(200);
    await expect.poll(() => linesOf('log-models-1')).toHaveLength(1);
    const [line] = await linesOf('log-models-1');
    expect(line).toMatchObject({
      msg: 'request completed',
      req: { method: 'GET', url: '/v1/models' },
      res: { statusCode: 200 },
    });
    expect(line!.responseTime).toBeGreaterThan(0);
    expect(await readFile(logFile, 'utf8')).not.toContain('incoming request');
  });

  it('logs a stream followed to its end once, and one its client left once, as left', async () => {
    const started = await h.postJson(`${h.url}/v1/chat/completions`, runbookRequest(RUNBOOK), {
      'x-request-id': 'log-chat-left',
    });
    expect(started.status).toBe(200);
    const reader = started.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    const runId = /"trajectory_id":"([^"]+)"/.exec(first)?.[1] ?? /run[_-]?id":"([^"]+)"/.exec(first)?.[1];
    expect(runId, first).toBeTruthy();
    await reader.cancel();
    await expect.poll(() => linesOf('log-chat-left'), { timeout: 5000 }).toHaveLength(1);
    expect((await linesOf('log-chat-left'))[0]).toMatchObject({
      msg: 'stream closed by the client',
      req: { method: 'POST', url: '/v1/chat/completions' },
    });

    const events = await h.fetch(`${h.url}/v1/runs/${runId}/events`, {
      headers: { 'x-request-id': 'log-events-1' },
    });
    expect(await events.text()).toContain('event: run.completed');
    await expect.poll(() => linesOf('log-events-1'), { timeout: 5000 }).toHaveLength(1);
    expect((await linesOf('log-events-1'))[0]).toMatchObject({
      msg: 'request completed',
      req: { method: 'GET', url: `/v1/runs/${runId}/events` },
      res: { statusCode: 200 },
    });
  });
});
