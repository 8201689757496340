import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import Dockerode from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, runbookRequest, startHarness } from '../support/harness.js';
import { dumpRedis } from '../support/redis.js';
import { sandboxesLeft } from '../support/sandboxes.js';

// A secret printed right where an event is cut (the tool.result output, a log line) must leave no
// fragment anywhere the server keeps or sends events: redaction comes before the cut, and a cut
// that lands inside a secret keeps none of it.
const docker = new Dockerode();
let h: Harness;

beforeAll(async () => {
  h = await startHarness();
}, 120_000);

afterEach(async () => {
  const left = await sandboxesLeft(docker, h.instance);
  for (const c of left) await docker.getContainer(c.Id).remove({ force: true });
  expect(left.map((c) => c.Names)).toEqual([]);
});

afterAll(async () => {
  await h?.stop();
});

// `xs N` prints N x's; each line ends with the secret, so it straddles the cut of a 4 KiB and of a
// 16 KiB limit (the tool.result and log limits, before and after this change).
/**
 * The agent's own stderr, as a tool's command reaches it: the sandbox's agent process is the shell
 * whose $0 is `jetty-agent` (src/sandbox/docker-driver.ts); the bracket keeps this line from matching
 * itself.
 */
const AGENT_ERR = "/proc/$(grep -la 'jetty-[a]gent' /proc/[0-9]*/cmdline | head -1 | cut -d/ -f3)/fd/2";
const XS = (n: number) => `head -c ${n} /dev/zero | tr '\\0' x`;
const RUNBOOK = [
  '---',
  'agent: claude-code',
  'secrets:',
  '  CANARY: { env: CANARY_TOKEN, description: "a canary", required: true }',
  '---',
  '# Prints its secret at the edge of every cut',
  '',
  '```simulate',
  `- run: ${XS(16_370)}; printf %s "$CANARY_TOKEN"`,
  `- run: ( ${XS(4_090)}; printf '%s\\n' "$CANARY_TOKEN"; ${XS(16_370)}; printf '%s\\n' "$CANARY_TOKEN" ) >${AGENT_ERR}; echo logged`,
  '- say: done',
  '```',
  '',
].join('\n');

describe('a secret straddling the cut of a long tool result or log line', () => {
  it('leaves no prefix of its value in SSE events, the run record, Redis or trajectory.json', async () => {
    // Distinctive from its first characters, so that a 4-character prefix cannot turn up by chance.
    const canary = `@@canary@@${randomBytes(12).toString('hex')}`;
    await h.setEnv({ CANARY_TOKEN: canary });
    const res = await h.postJson(`${h.url}/v1/chat/completions`, runbookRequest(RUNBOOK, { stream: false }));
    const raw = await res.text();
    expect(res.status, raw).toBe(200);
    const body = JSON.parse(raw) as { jetty_metadata: { trajectory_id: string; status: string } };
    const runId = body.jetty_metadata.trajectory_id;
    expect(body.jetty_metadata.status).toBe('completed');

    const sse = await (await h.fetch(`${h.url}/v1/runs/${runId}/events`)).text();
    const places: Record<string, string> = {
      sse,
      record: await (await h.fetch(`${h.url}/v1/runs/${runId}`)).text(),
      redis: await dumpRedis(h.redis.url),
      'trajectory.json': await readFile(
        path.join(h.dataDir, 'blobs', 'runs', runId, 'trajectory.json'),
        'utf8',
      ),
    };
    // The cuts did happen where the secret was: both long outputs are in the stream, cut.
    const events = sse
      .split('\n')
      .filter((l) => l.startsWith('data: '))
      .map((l) => JSON.parse(l.slice(6)) as { type?: string; data?: Record<string, unknown> });
    const results = events.filter((e) => e.data?.call_id !== undefined && e.data?.output !== undefined);
    expect(results.some((e) => e.data?.truncated === true && String(e.data.output).startsWith('xxxx'))).toBe(
      true,
    );
    const longLogs = events.filter(
      (e) => typeof e.data?.line === 'string' && /^x{4000}/.test(String(e.data.line)),
    );
    expect(longLogs.length).toBe(2);

    for (const [where, text] of Object.entries(places)) {
      for (let n = canary.length; n >= 4; n--) {
        const prefix = canary.slice(0, n);
        expect(text.includes(prefix), `${n} characters of the secret (${prefix}) in ${where}`).toBe(false);
      }
    }
  });
});
