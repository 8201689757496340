// The official OpenAI Node client, pointed at this server. `jetty` rides along as an extra body field.
// Usage: JETTY_API_KEY=jrk_… node examples/openai-node.mjs [BASE_URL]   (run from the repository root after npm ci)
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';

const client = new OpenAI({ baseURL: `${process.argv[2] ?? 'http://127.0.0.1:8080'}/v1`, apiKey: process.env.JETTY_API_KEY });
const runbook = readFileSync(new URL('./hello.md', import.meta.url), 'utf8');

const stream = await client.chat.completions.create({
  model: 'claude-sonnet-4-6',
  stream: true,
  messages: [
    { role: 'system', content: runbook },
    { role: 'user', content: 'Execute the runbook.' },
  ],
  jetty: { runbook: true, model_provider: 'simulated' },
});
for await (const chunk of stream) {
  const delta = chunk.choices[0]?.delta ?? {};
  if (delta.reasoning_content) process.stdout.write(`[tool] ${delta.reasoning_content}`);
  if (delta.content) process.stdout.write(`${delta.content}\n`);
  if (chunk.choices[0]?.finish_reason) {
    console.log(`status: ${chunk.jetty_metadata.status}, artifacts:`, chunk.jetty_metadata.artifacts.map((a) => a.url));
  }
}
