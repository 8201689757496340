import { describe, expect, it } from 'vitest';
import { environmentWarnings } from '../../src/environments/check.js';
import { commandsOfRunbook, shellCommandWords } from '../../src/environments/commands.js';
import { parseProbeOutput, unusableReason } from '../../src/environments/probe.js';

describe('the commands a runbook calls', () => {
  it('reads shell blocks, Python blocks and the Dependencies section; ignores simulate and other text', () => {
    const runbook = [
      '# Report',
      'We use curl and git in prose only.',
      '## Dependencies',
      '| Dependency | Purpose |',
      '|---|---|',
      '| Python 3.12 | analysis |',
      '| Playwright (chromium) | screenshots |',
      '| pandas | tables |',
      '## Step 1: Environment Setup',
      '```bash',
      'pip install pandas==2.2 && uv venv .venv',
      'DEBUG=1 npx --yes tsx script.ts | jq .count > out.txt',
      'if [ -f x ]; then ./local-tool --flag; fi',
      'cd /app && node -v',
      '```',
      '```python',
      'print(1)',
      '```',
      '```simulate',
      '- run: ffmpeg -i x',
      '```',
    ].join('\n');
    expect(commandsOfRunbook(runbook)).toEqual([
      'chromium',
      'jq',
      'node',
      'npx',
      'pip',
      'playwright',
      'python3',
      'uv',
    ]);
  });

  it('takes the first word of each simple command, past assignments, sudo and prompts', () => {
    expect(
      shellCommandWords('$ sudo FOO=1 python3 x.py; a || b && c | d\n# git comment\nenv X=1 curl -s'),
    ).toEqual(['python3', 'a', 'b', 'c', 'd', 'curl']);
  });
});

describe('the environment probe and check', () => {
  const output = ['sh yes', 'glibc 2.36', 'cmd bash', 'cmd python3', 'cmd python3', 'cmd node', ''].join(
    '\n',
  );

  it('parses the facts, deduplicating commands', () => {
    expect(parseProbeOutput(output, false)).toEqual({
      shell: true,
      glibc: '2.36',
      unresolved: [],
      commands: ['bash', 'node', 'python3'],
      commandsTruncated: false,
    });
  });

  it('refuses an image with no glibc, no shell, or a glibc too old for the agent, saying which', () => {
    const base = { image: 'x:1', shell: true, glibc: '2.36' as string | null, unresolved: [] as string[] };
    expect(unusableReason(base)).toBeNull();
    expect(unusableReason({ ...base, glibc: null })).toMatch(/x:1 cannot host the agent: it has no glibc/);
    expect(unusableReason({ ...base, shell: false })).toMatch(/no \/bin\/sh/);
    expect(
      unusableReason({
        ...base,
        glibc: '2.28',
        unresolved: ["/opt/jetty/bin/node version `GLIBC_2.34' not found"],
      }),
    ).toMatch(/glibc 2\.28 cannot load the agent's programs .*GLIBC_2\.34/);
  });

  it('warns once, naming what the environment lacks; nothing when it has everything', () => {
    const report = {
      ...parseProbeOutput(output, false),
      image: 'jetty/env-lean:1',
      imageId: 'sha256:1',
      layer: 'l',
      probedAt: '',
    };
    const run = {
      environment: { snapshot: 'lean', image: 'jetty/env-lean:1' },
      commands: ['jq', 'node', 'python3', 'uv'],
    };
    const warnings = environmentWarnings(report, run);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ code: 'environment_missing' });
    expect(warnings[0]!.message).toMatch(
      /^The runbook calls jq, uv, which the lean snapshot \(jetty\/env-lean:1\) does not have/,
    );
    expect(environmentWarnings(report, { ...run, commands: ['node', 'python3'] })).toEqual([]);
  });
});
