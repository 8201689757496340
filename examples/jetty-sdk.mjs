// Jetty's own TypeScript SDK (@jetty/sdk), unchanged, pointed at this server.
// Usage: JETTY_API_URL=http://127.0.0.1:8080 JETTY_API_TOKEN=jrk_… node examples/jetty-sdk.mjs
// (the SDK reads both variables itself; npm install @jetty/sdk in your own project)
import { JettyClient } from '@jetty/sdk';

const jetty = new JettyClient();
const [{ name: collection }] = await jetty.listCollections();

const runbook = `---
agent: claude-code
model_provider: simulated
primary_outputs: [greeting.md]
---
# Greeting
Write a one-line greeting for {{name}} to {{results_dir}}/greeting.md.

\`\`\`simulate
- run: mkdir -p /app/results && printf 'Hello, {{name}}!' > /app/results/greeting.md
- say: wrote greeting.md
\`\`\`
`;
const workflow = {
  steps: ['run'],
  step_configs: { run: { activity: 'runbook' } },
  init_params: { instruction: runbook },
};
await jetty.getTask(collection, 'greeting').catch(() => jetty.createTask(collection, 'greeting', workflow));

const trajectory = await jetty.runAndWait(collection, 'greeting', { vars: { name: 'Ada' } }, { pollMs: 500 });
console.log(trajectory.trajectory_id, trajectory.status);
await jetty.addLabel(collection, 'greeting', trajectory.trajectory_id, 'review', 'approved', 'me@example.com');

const [file] = trajectory.steps.run.outputs.primary_files;
const { bytes, filename } = await jetty.downloadFile(file.path);
console.log(file.path, '→', filename, JSON.stringify(new TextDecoder().decode(bytes)));

const again = await jetty.getTrajectory(collection, 'greeting', trajectory.trajectory_id);
console.log('labels:', again.labels.map((l) => `${l.key}=${l.value}`).join(', '));
console.log('usage:', JSON.stringify(again.steps.run.outputs.usage));
