// Streams a runbook through POST /v1/chat/completions and prints what the agent does as it
// happens, then downloads the artifacts. Usage: JETTY_API_KEY=jrk_… node scripts/demo-client.mjs [BASE_URL] [RUNBOOK]
import { readFileSync } from 'node:fs';

const key = process.env.JETTY_API_KEY;
if (!key) {
  console.error('Set JETTY_API_KEY to an API key of your collection (scripts/up.sh prints the demo one).');
  process.exit(2);
}
const auth = { authorization: `Bearer ${key}` };

const base = (process.argv[2] ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
const runbook = readFileSync(process.argv[3] ?? new URL('../examples/hello.md', import.meta.url), 'utf8');
const t0 = Date.now();
const at = () => `${String(Date.now() - t0).padStart(6)} ms`;

const res = await fetch(`${base}/v1/chat/completions`, {
  method: 'POST',
  headers: { 'content-type': 'application/json', ...auth },
  body: JSON.stringify({
    model: 'claude-sonnet-4-6',
    stream: true,
    messages: [
      { role: 'system', content: runbook },
      { role: 'user', content: 'Execute the runbook.' },
    ],
    jetty: { runbook: true, model_provider: 'simulated' },
  }),
});
if (!res.ok) {
  console.error(`${res.status}: ${await res.text()}`);
  process.exit(1);
}
let runId = '';
let status = '';
let buf = '';
const decoder = new TextDecoder();
for await (const bytes of res.body) {
  buf += decoder.decode(bytes, { stream: true });
  let i;
  while ((i = buf.indexOf('\n\n')) >= 0) {
    const block = buf.slice(0, i);
    buf = buf.slice(i + 2);
    const data = block
      .split('\n')
      .filter((l) => l.startsWith('data: '))
      .map((l) => l.slice(6))
      .join('\n');
    if (!data) continue;
    if (data === '[DONE]') {
      console.log(`${at()}  [DONE]`);
      continue;
    }
    const chunk = JSON.parse(data);
    if (chunk.error) {
      console.log(`${at()}  error: ${chunk.error.code}: ${chunk.error.message}`);
      continue;
    }
    if (!runId) {
      runId = chunk.jetty_metadata.trajectory_id;
      console.log(`${at()}  first chunk: run ${runId}`);
      continue;
    }
    const ev = chunk.jetty_event;
    const delta = chunk.choices[0]?.delta ?? {};
    if (delta.content) console.log(`${at()}  agent: ${delta.content.trim()}`);
    else if (ev?.type === 'tool.call') console.log(`${at()}  tool call: ${delta.reasoning_content.trim()}`);
    else if (ev?.type === 'tool.result') console.log(`${at()}  tool result: ${JSON.stringify(ev.data.output).slice(0, 100)}`);
    else if (ev) console.log(`${at()}  ${ev.type}${ev.type === 'usage' ? ` ${ev.data.source}: ${ev.data.input_tokens} in / ${ev.data.output_tokens} out` : ''}`);
    if (chunk.choices[0]?.finish_reason) status = chunk.jetty_metadata.status;
  }
}
console.log(`run ${runId}: ${status}`);
const arts = await (await fetch(`${base}/v1/runs/${runId}/artifacts`, { headers: auth })).json();
for (const a of arts.data ?? []) {
  const body = await (await fetch(`${base}${a.url}`, { headers: auth })).text();
  console.log(`artifact ${a.path} (${a.size} bytes, sha256 ${a.sha256.slice(0, 12)}…): ${JSON.stringify(body)}`);
}
process.exit(status === 'completed' ? 0 : 1);
