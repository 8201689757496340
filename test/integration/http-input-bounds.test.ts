import { Agent, request as httpRequest } from 'node:http';
import path from 'node:path';
import { JettyClient } from '@jetty/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobStore } from '../../src/storage/blob-store.js';
import { DirectoryObjectStore } from '../../src/storage/directory-object-store.js';
import { type Harness, runbookRequest, startHarness, waitFor } from '../support/harness.js';
import { claudeLines, ScriptedDriver } from '../support/scripted-driver.js';
import { readSse } from '../support/sse.js';

// What the API does with inputs at their edges, on a real server and Redis: JSON nested past the
// limit, Last-Event-ID past the stream's end, a POST with an empty JSON body, and a finished run's
// events read back from the blob store once Redis has let the run go.
const RUNBOOK = '---\nagent: claude-code\n---\n# Hello\nWrite {{results_dir}}/hello.txt\n';
const WORKFLOW = {
  steps: ['run'],
  step_configs: { run: { activity: 'runbook' } },
  init_params: { agent: 'claude-code', model_provider: 'simulated', instruction: RUNBOOK },
};

let h: Harness;
beforeAll(async () => {
  h = await startHarness({
    driver: new ScriptedDriver(() => claudeLines({ steps: 3, delayMs: 5 })),
    env: { MAX_JSON_DEPTH: '64', MAX_UPLOAD_BYTES: '64k' },
  });
  await new JettyClient({ apiUrl: h.url, token: h.key, maxRetries: 0 }).createTask(
    h.collection,
    'report',
    WORKFLOW,
  );
});
afterAll(async () => {
  await h?.stop();
});

/** JSON nested `depth` deep, as text: JSON.stringify itself overflows on such a value. */
const deepText = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;

async function errorOf(res: Response) {
  return {
    status: res.status,
    error: ((await res.json()) as { error: { message: string; code: string } }).error,
  };
}

async function finishedRun(): Promise<{ id: string; eventIds: string[] }> {
  const res = await h.postJson(`${h.url}/v1/chat/completions`, runbookRequest(RUNBOOK, { stream: false }));
  expect(res.status).toBe(200);
  const id = ((await res.json()) as { jetty_metadata: { trajectory_id: string } }).jetty_metadata
    .trajectory_id;
  const traj = (await (await h.fetch(`${h.url}/v1/runs/${id}/trajectory`)).json()) as {
    events: { id: string }[];
  };
  return { id, eventIds: traj.events.map((e) => e.id) };
}

async function eventIdsAfter(id: string, lastEventId: string): Promise<string[]> {
  const res = await h.fetch(`${h.url}/v1/runs/${id}/events`, { headers: { 'last-event-id': lastEventId } });
  expect(res.status).toBe(200);
  const ids: string[] = [];
  for await (const ev of readSse(res.body!)) if (ev.id) ids.push(ev.id);
  return ids;
}

describe('JSON nesting depth', () => {
  it('a chat request with template_variables nested 5,000 deep is a 400 naming the limit', async () => {
    const body = JSON.stringify(runbookRequest(RUNBOOK, { stream: false })).replace(
      '"jetty":{',
      `"jetty":{"template_variables":{"deep":${deepText(5000)}},`,
    );
    const res = await h.fetch(`${h.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    const { status, error } = await errorOf(res);
    expect(status).toBe(400);
    expect(error.code).toBe('json_too_deep');
    expect(error.message).toContain('MAX_JSON_DEPTH');
    expect(error.message).toContain('64');
  });

  it('the /api/v1 statuses body and multipart init_params too', async () => {
    const statuses = await h.fetch(`${h.url}/api/v1/trajectory/${h.collection}/report/statuses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: `{"x":${deepText(5000)}}`,
    });
    expect(await errorOf(statuses)).toMatchObject({ status: 400, error: { code: 'json_too_deep' } });

    const fd = new FormData();
    fd.append('init_params', `{"vars":${deepText(5000)}}`);
    const run = await h.fetch(`${h.url}/api/v1/run/${h.collection}/report`, { method: 'POST', body: fd });
    const got = await errorOf(run);
    expect(got).toMatchObject({ status: 400, error: { code: 'json_too_deep' } });
    expect(got.error.message).toContain('init_params');
  });

  it('nesting up to the limit is not refused for its depth', async () => {
    const res = await h.fetch(`${h.url}/api/v1/trajectory/${h.collection}/report/statuses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      // The body object is level 1: 64 levels in all.
      body: `{"x":${deepText(63).replace('1', '"cancelled"')}}`,
    });
    expect(res.status).toBe(200);
  });
});

describe('a bodyless POST', () => {
  it('is accepted with content-type application/json and an empty body, as many clients send it', async () => {
    const { id } = await finishedRun();
    const res = await h.fetch(`${h.url}/v1/runs/${id}/cancel`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '',
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { status: string }).status).toBe('completed');
  });
});

describe('Last-Event-ID', () => {
  it('after the stream’s last event, or malformed, is a 400; the last one itself resumes to nothing', async () => {
    const { id, eventIds } = await finishedRun();
    const last = eventIds[eventIds.length - 1]!;
    const [ms, seq] = last.split('-').map(Number) as [number, number];
    for (const bad of [`${ms}-${seq + 1}`, `${ms + 1}-0`, '99999999999999-0', 'abc', '1-2-3']) {
      const res = await h.fetch(`${h.url}/v1/runs/${id}/events`, { headers: { 'last-event-id': bad } });
      const got = await errorOf(res);
      expect(got.status, bad).toBe(400);
      expect(got.error.message, bad).toContain('Last-Event-ID');
    }
    expect(await eventIdsAfter(id, last)).toEqual([]);
  });

  it('resumes exactly after it on a finished run that Redis has let go (read from the blob store)', async () => {
    const { id, eventIds } = await finishedRun();
    expect(eventIds.length).toBeGreaterThan(4);
    // The answer comes with the terminal event; the trajectory is written to the blob store just after.
    const blobs = new BlobStore(
      new DirectoryObjectStore(path.join(h.dataDir, 'blobs')),
      path.join(h.dataDir, 'scratch'),
      {
        maxJsonBytes: 64 * 1024 ** 2,
      },
    );
    await waitFor(() => blobs.readTrajectory(id), 5000, 'the trajectory in the blob store');
    // What retention does to a run: its keys leave Redis; its trajectory stays in the blob store.
    const gone = await waitFor(
      async () => {
        const keys = await h.server.redis.keys(`${h.instance}:*${id}*`);
        const ours = keys.filter((k) => !k.includes(':bull:'));
        if (ours.length > 0) await h.server.redis.del(...ours);
        return (await h.server.redis.keys(`${h.instance}:run:${id}*`)).length === 0;
      },
      5000,
      'the run to leave Redis',
    );
    expect(gone).toBe(true);
    expect((await h.fetch(`${h.url}/v1/runs/${id}`)).status).toBe(200);
    expect(await eventIdsAfter(id, eventIds[2]!)).toEqual(eventIds.slice(3));
    expect(await eventIdsAfter(id, '0')).toEqual(eventIds);
    const past = await h.fetch(`${h.url}/v1/runs/${id}/events`, {
      headers: { 'last-event-id': `${Number(eventIds.at(-1)!.split('-')[0]) + 1}-0` },
    });
    expect(past.status).toBe(400);
  });
});

/** One request on the given agent; its status, headers and body, or 'timeout' after 5 s. */
function call(
  agent: Agent,
  path: string,
  opts: { method?: string; headers?: Record<string, string>; body?: Buffer } = {},
): Promise<{ status: number; headers: Record<string, unknown>; body: string } | 'timeout'> {
  const base = new URL(h.url);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: base.hostname,
        port: base.port,
        path,
        method: opts.method ?? 'GET',
        headers: opts.headers,
        agent,
      },
      (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        });
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      resolve('timeout');
    }, 5000);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(opts.body);
  });
}

describe('a keep-alive connection', () => {
  it('is not left stalled by a multipart request refused before its body was read: the next request is answered', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      // A bad init_params first: the answer (400) comes before the files that follow are read.
      const boundary = 'b0undary';
      const file = (i: number) =>
        `--${boundary}\r\ncontent-disposition: form-data; name="files"; filename="f${i}.bin"\r\n\r\n${'z'.repeat(20_000)}\r\n`;
      const body = Buffer.from(
        `--${boundary}\r\ncontent-disposition: form-data; name="init_params"\r\n\r\n{not json\r\n${Array.from({ length: 20 }, (_, i) => file(i)).join('')}--${boundary}--\r\n`,
      );
      const upload = await call(agent, `/api/v1/run/${h.collection}/report`, {
        method: 'POST',
        headers: {
          ...h.auth,
          'content-type': `multipart/form-data; boundary=${boundary}`,
          'content-length': String(body.length),
        },
        body,
      });
      expect(upload !== 'timeout' && upload.status).toBe(400);
      const next = await call(agent, '/v1/runs', { headers: h.auth });
      expect(next !== 'timeout' && next.status).toBe(200);
    } finally {
      agent.destroy();
    }
  });
});

describe('answers given before a route is reached', () => {
  const envelopeOf = (r: Awaited<ReturnType<typeof call>>) => {
    if (r === 'timeout') throw new Error('no answer');
    expect(r.headers['x-request-id']).toMatch(/^req_/);
    expect(r.headers['content-type']).toContain('application/json');
    return { status: r.status, error: (JSON.parse(r.body) as { error: Record<string, unknown> }).error };
  };

  it('a path that does not decode, a segment past the router limit, headers past MAX_HEADER_BYTES: the OpenAI envelope with a request id', async () => {
    const agent = new Agent({ keepAlive: false });
    try {
      const badUrl = envelopeOf(await call(agent, '/v1/runs/%zz', { headers: h.auth }));
      expect(badUrl).toMatchObject({
        status: 400,
        error: { type: 'invalid_request_error', code: 'invalid_url' },
      });
      const long = envelopeOf(await call(agent, `/v1/runs/${'a'.repeat(101)}`, { headers: h.auth }));
      expect(long).toMatchObject({ status: 414, error: { code: 'path_too_long' } });
      const headers = envelopeOf(
        await call(agent, '/v1/runs', { headers: { ...h.auth, 'x-big': 'b'.repeat(20_000) } }),
      );
      expect(headers).toMatchObject({ status: 431, error: { code: 'headers_too_large' } });
      expect(headers.error.message).toContain('MAX_HEADER_BYTES');
    } finally {
      agent.destroy();
    }
  });
});
