import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cuttingProxy } from '../support/cutting-proxy.js';
import { type Harness, runbookRequest, startHarness } from '../support/harness.js';
import { sandboxesLeft } from '../support/sandboxes.js';

// The web page at /ui in a real headless Chromium (Debian's package, driven by playwright-core),
// against a real server: real Redis, Docker, the claude CLI in its image, the simulated model.
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SCREENSHOT = path.resolve(import.meta.dirname, '../../docs/img/web-ui.png');
const docker = new Dockerode();
let h: Harness;
let browser: BrowserContext;
let profile: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: scripts/setup.sh --test installs chromium`);
  h = await startHarness();
  profile = await mkdtemp(path.join(tmpdir(), 'jetty-chromium-'));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1360, height: 940 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}, 120_000);

afterEach(async () => {
  const left = await sandboxesLeft(docker, h.instance);
  for (const c of left) await docker.getContainer(c.Id).remove({ force: true });
  expect(left.map((c) => c.Names)).toEqual([]);
});

afterAll(async () => {
  await browser?.close();
  await h?.stop();
  if (profile) await rm(profile, { recursive: true, force: true });
});

// A 2×2 PNG, as base64.
const PNG =
  'iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP4z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg==';

const RUNBOOK = [
  '---',
  'agent: claude-code',
  '---',
  '# Weekly report',
  '',
  '```simulate',
  '- say: I will write the report, its data and a chart.',
  '- run: mkdir -p /app/results && printf \'# Weekly report\\n\\nAll **3** checks passed.\\n\\n- alpha\\n- beta\\n\' > /app/results/report.md && printf \'{"checks":3,"ok":true}\' > /app/results/data.json',
  `- run: echo ${PNG} | base64 -d > /app/results/chart.png`,
  '- sleep_ms: 3000',
  '- say: Done. report.md, data.json and chart.png are in /app/results.',
  '```',
  '',
].join('\n');

async function startRun(runbook: string): Promise<string> {
  const res = await h.postJson(
    `${h.url}/v1/chat/completions`,
    runbookRequest(runbook, { stream: false, jetty: { timeout_hint: 0 } }),
  );
  return ((await res.json()) as { jetty_metadata: { trajectory_id: string } }).jetty_metadata.trajectory_id;
}

/**
 * A runbook the server scores (docs/evaluation.md). Its script passes when answer.txt exists and
 * holds 42; the agent writes `answer` and reports a pass whatever it wrote.
 */
const evaluated = (answer: string) =>
  [
    '---',
    'agent: claude-code',
    'evaluation: programmatic',
    '---',
    '# The answer — Agent Runbook',
    '',
    '## Final Checklist',
    '',
    '### Verification Script',
    '',
    '```bash',
    'f="{{results_dir}}/answer.txt"',
    'if [ -s "$f" ]; then echo "PASS: answer.txt written"; else echo "FAIL: answer.txt missing"; fi',
    'if [ "$(cat "$f" 2>/dev/null)" = "42" ]; then echo "PASS: the answer is 42"; else echo "FAIL: the answer is not 42"; fi',
    '```',
    '',
    '```simulate',
    '- run: |',
    `    mkdir -p {{results_dir}} && printf '${answer}' > {{results_dir}}/answer.txt`,
    `    printf '{"overall_passed": true}' > {{results_dir}}/validation_report.json`,
    '- say: Wrote the answer.',
    '```',
    '',
  ].join('\n');

/** The experiment table as `jetty ab` prints it, recomputed here from GET /v1/experiments/{id}. */
function variantRow(v: any): string[] {
  const pct = (x: number) => `${Math.round(x * 100)}%`;
  return [
    v.name,
    `${v.ended}/${v.runs}`,
    String(v.passed),
    `${pct(v.pass_rate)} [${pct(v.pass_rate_ci[0])}, ${pct(v.pass_rate_ci[1])}]`,
    String(v.mean_score),
    `${(v.median_duration_ms / 1000).toFixed(1)}s`,
    `$${v.mean_cost_usd.toFixed(4)}`,
    String(v.tokens),
  ];
}

const getJson = async (p: string): Promise<any> => (await h.fetch(`${h.url}${p}`)).json();

async function signIn(page: Page, base: string): Promise<void> {
  await page.goto(`${base}/ui`);
  await page.getByLabel('API key').fill(h.key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Runs' }).waitFor();
}

describe('the web page at /ui', () => {
  it('is public, with a content security policy; the API behind it is not', async () => {
    const res = await fetch(`${h.url}/ui`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(await res.text()).toContain('<script type="module" src="/ui/web/app.js">');
    expect((await fetch(`${h.url}/ui/web/app.js`)).headers.get('content-type')).toMatch(/^text\/javascript/);
    // Only the compiled modules are served: nothing else of the disk, however the path is spelled.
    expect((await fetch(`${h.url}/ui/web/nope.js`)).status).toBe(404);
    expect((await fetch(`${h.url}/ui/web%2F..%2F..%2F..%2Fpackage.json`)).status).toBe(404);
    expect((await fetch(`${h.url}/v1/runs`)).status).toBe(401);
  });

  it('a run started elsewhere appears, goes to completed live, and shows its timeline and artifacts', async () => {
    const page = await browser.newPage();
    const urls: string[] = [];
    const authorized: string[] = [];
    page.on('request', (r) => {
      urls.push(r.url());
      if (r.headers().authorization === `Bearer ${h.key}`) authorized.push(new URL(r.url()).pathname);
    });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await signIn(page, h.url);
    await page.evaluate(() => {
      (globalThis as any).__stay = 1;
    });

    const id = await startRun(RUNBOOK);
    const row = page.getByTestId(`run-${id}`);
    await row.waitFor({ timeout: 15_000 });
    await expect
      .poll(() => row.locator('[data-status]').getAttribute('data-status'), { timeout: 15_000 })
      .toMatch(/pending|running/);
    await row.locator('[data-status="completed"]').waitFor({ timeout: 60_000 });
    // Live: the same document all along, no reload.
    expect(await page.evaluate(() => (globalThis as any).__stay)).toBe(1);
    await expect.poll(() => row.locator('td').nth(2).textContent()).toContain('claude-code');
    // The status filter asks the server for that status only.
    await page.getByTestId('status-filter').selectOption('failed');
    await row.waitFor({ state: 'detached' });
    await page.getByTestId('status-filter').selectOption('completed');
    await row.waitFor();

    await row.getByRole('link', { name: id }).click();
    const timeline = page.getByTestId('timeline');
    await page.getByTestId('timeline-end').waitFor({ timeout: 30_000 });
    expect(await page.getByTestId('timeline-end').textContent()).toMatch(/^completed in /);
    const calls = timeline.getByTestId('tool-call');
    expect(await calls.count()).toBe(2);
    expect(await calls.first().locator('summary').textContent()).toMatch(
      /^→ Bash: mkdir -p \/app\/results.* ✓$/,
    );
    // The result is folded until opened.
    await expect.poll(() => calls.first().getByTestId('tool-result').isVisible()).toBe(false);
    await calls.first().locator('summary').click();
    await calls.first().getByTestId('tool-result').waitFor();

    const artifacts = page.getByTestId('artifacts');
    await artifacts.getByTestId('artifact-data.json').getByRole('button', { name: 'Preview' }).click();
    await expect
      .poll(() => page.getByTestId('preview-text').textContent())
      .toBe('{\n  "checks": 3,\n  "ok": true\n}');
    await artifacts.getByTestId('artifact-chart.png').getByRole('button', { name: 'Preview' }).click();
    await expect
      .poll(() =>
        page
          .getByTestId('preview-image')
          .evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth),
      )
      .toBe(2);
    await artifacts.getByTestId('artifact-report.md').getByRole('button', { name: 'Preview' }).click();
    const md = page.getByTestId('preview-markdown');
    await md.getByRole('heading', { name: 'Weekly report' }).waitFor();
    expect(await md.locator('strong').textContent()).toBe('3');
    expect(await md.locator('li').allTextContents()).toEqual(['alpha', 'beta']);

    const download = page.waitForEvent('download');
    await artifacts.getByTestId('artifact-report.md').getByRole('button', { name: 'Download' }).click();
    expect((await download).suggestedFilename()).toBe('report.md');

    // The README's picture: rewritten only when asked (JETTY_UPDATE_SCREENSHOT=1), so a test run leaves the tree clean.
    const shot = await page.screenshot({ fullPage: false });
    expect(shot.subarray(1, 4).toString()).toBe('PNG');
    if (process.env.JETTY_UPDATE_SCREENSHOT === '1') {
      await mkdir(path.dirname(SCREENSHOT), { recursive: true });
      await writeFile(SCREENSHOT, shot);
    }

    // The key went as a header on the API calls and never in a URL.
    expect(urls.filter((u) => u.includes(h.key))).toEqual([]);
    expect(authorized).toContain(`/v1/runs/${id}/events`);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('an evaluated run shows its evaluation in the run list and on its page', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await signIn(page, h.url);
    const id = await startRun(evaluated('41'));
    const row = page.getByTestId(`run-${id}`);
    await row.locator('[data-status="completed"]').waitFor({ timeout: 90_000 });
    const rec = await getJson(`/v1/runs/${id}`);
    expect(rec.evaluation).toMatchObject({ passed: false, score: 0.5, disagreement: true });
    const summary = 'not passed · score 0.5 · The verification script reported 1 failed check of 2.';
    // The list's column: the summary cut to fit, the whole of it on hover.
    const cell = row.getByTestId('evaluation');
    await expect.poll(() => cell.textContent(), { timeout: 15_000 }).toBe(`${summary.slice(0, 59)}…`);
    expect(await cell.getAttribute('title')).toBe(summary);

    await row.getByRole('link', { name: id }).click();
    const card = page.getByTestId('evaluation');
    await card.waitFor({ timeout: 15_000 });
    expect(await card.getByTestId('evaluation-verdict').textContent()).toBe('not passed');
    expect(await card.getByTestId('evaluation-summary').textContent()).toBe(rec.evaluation.summary);
    expect(summary).toContain(rec.evaluation.summary);
    const facts = await card.getByTestId('evaluation-facts').locator('div').allInnerTexts();
    expect(facts.map((f) => f.replace(/\s*\n\s*/, ': '))).toEqual(
      expect.arrayContaining([
        'KIND: programmatic',
        'SCORE: 0.5 of 1',
        'CHECKS: 1 passed · 0 partial · 1 failed',
        'DECIDED BY: verification script',
      ]),
    );
    expect(await card.getByTestId('evaluation-stages').locator('li').allTextContents()).toEqual([
      '✓ answer.txt written',
      '✗ the answer is not 42',
    ]);
    expect(await card.getByTestId('evaluation-disagreement').textContent()).toContain('overall_passed: true');
    // The script's output is folded until opened.
    const output = card.getByTestId('evaluation-output');
    await expect.poll(() => output.locator('pre').isVisible()).toBe(false);
    await output.locator('summary').click();
    expect(await output.locator('pre').textContent()).toContain('FAIL: the answer is not 42');
    // A run of no experiment shows no experiment.
    expect(await page.getByTestId('experiment').isHidden()).toBe(true);
    expect(errors).toEqual([]);
    await page.close();
  }, 150_000);

  it("a run of an experiment shows the experiment's variant table, the figures GET /v1/experiments/{id} gives", async () => {
    // The script passes when both files exist; the agent writes extra.md only when the variant says so.
    const runbook = [
      '---',
      'evaluation: programmatic',
      'model_provider: simulated',
      '---',
      '# A/B — Agent Runbook',
      '',
      '## Final Checklist',
      '',
      '### Verification Script',
      '',
      '```bash',
      'for f in brief.md extra.md; do',
      '  if [ -s "{{results_dir}}/$f" ]; then echo "PASS: $f"; else echo "FAIL: $f missing"; fi',
      'done',
      '```',
      '',
      '```simulate',
      '- run: |',
      "    mkdir -p {{results_dir}} && printf 'brief\\n' > {{results_dir}}/brief.md",
      "    if [ '{{extra}}' = yes ]; then printf 'extra\\n' > {{results_dir}}/extra.md; fi",
      '- say: Done.',
      '```',
      '',
    ].join('\n');
    const res = await h.postJson(`${h.url}/v1/experiments`, {
      runbook,
      variants: [
        { agent: 'claude-code', jetty: { template_variables: { extra: 'no' } } },
        { agent: 'codex', jetty: { template_variables: { extra: 'yes' } } },
      ],
      repeats: 1,
    });
    expect(res.status).toBe(201);
    const expId = ((await res.json()) as { id: string }).id;
    let exp: any;
    const deadline = Date.now() + 150_000;
    do {
      await new Promise((r) => setTimeout(r, 500));
      exp = await getJson(`/v1/experiments/${expId}`);
    } while (exp.status === 'running' && Date.now() < deadline);
    expect(exp.status).toBe('completed');
    expect(exp.variants.map((v: any) => [v.name, v.passed, v.mean_score])).toEqual([
      ['claude-code', 0, 0.5],
      ['codex', 1, 1],
    ]);
    const [claudeRun, codexRun] = exp.variants.map((v: any) => v.run_ids[0] as string);

    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await signIn(page, h.url);
    // Both runs in the list, each with its own evaluation.
    await expect
      .poll(() => page.getByTestId(`run-${codexRun}`).getByTestId('evaluation').getAttribute('title'), {
        timeout: 15_000,
      })
      .toMatch(/^passed · score 1 · /);
    expect(
      await page.getByTestId(`run-${claudeRun}`).getByTestId('evaluation').getAttribute('title'),
    ).toMatch(/^not passed · score 0\.5 · /);

    await page.getByTestId(`run-${codexRun}`).getByRole('link', { name: codexRun }).click();
    const card = page.getByTestId('experiment');
    await card.getByTestId('variants').waitFor({ timeout: 15_000 });
    expect(await card.locator('h2').textContent()).toBe(`Experiment ${expId} completed`);
    expect(await card.locator('p').textContent()).toBe(
      '2 variant(s) × 1 run(s), graded programmatic. This run is of codex.',
    );
    expect(await card.locator('thead th').allTextContents()).toEqual([
      'variant',
      'ended',
      'passed',
      'pass rate (95% CI)',
      'mean score',
      'median time',
      'mean cost',
      'tokens',
    ]);
    // The figures the experiment gives, freshly asked (they stay put once it has completed).
    exp = await getJson(`/v1/experiments/${expId}`);
    for (const v of exp.variants) {
      const tr = card.getByTestId(`variant-${v.name}`);
      expect(await tr.locator('td').allTextContents(), v.name).toEqual(variantRow(v));
      expect(await tr.getAttribute('class'), v.name).toBe(v.name === 'codex' ? 'current' : null);
    }
    expect(variantRow(exp.variants[1]).slice(0, 5)).toEqual(['codex', '1/1', '1', '100% [21%, 100%]', '1']);
    // And the run's own evaluation above it.
    expect(await page.getByTestId('evaluation-verdict').textContent()).toBe('passed');
    expect(errors).toEqual([]);
    await page.close();
  }, 240_000);

  it('the timeline resumes after a dropped stream: each event once, in order, as text', async () => {
    const proxy = await cuttingProxy(Number(new URL(h.url).port), 3);
    const page = await browser.newPage();
    try {
      await signIn(page, proxy.url);
      const id = await startRun(
        [
          '# Resume',
          '```simulate',
          '- say: one',
          '- sleep_ms: 1500',
          '- say: <b>two</b> <img src=x onerror="window.__xss=1">',
          '- sleep_ms: 800',
          '- say: three',
          '```',
          '',
        ].join('\n'),
      );
      await page.goto(`${proxy.url}/ui#/runs/${id}`);
      await page.getByTestId('timeline-end').waitFor({ timeout: 60_000 });
      expect(proxy.cut()).toBe(true);
      // Requests, one by one (a kept-alive connection carries several, so connection order is not request order).
      const streams = proxy.requests
        .flatMap((r) => r.split(/(?=^GET )/m))
        .filter((r) => r.startsWith(`GET /v1/runs/${id}/events`));
      const resumed = streams.filter((r) => /^last-event-id: \S+\r$/im.test(r));
      expect(streams.length - resumed.length).toBe(1);
      expect(resumed.length).toBeGreaterThanOrEqual(1);
      const said = await page.getByTestId('timeline').locator('li.message').allTextContents();
      expect(said).toEqual(['one', '<b>two</b> <img src=x onerror="window.__xss=1">', 'three']);
      // Run data is text, never markup.
      expect(await page.getByTestId('timeline').locator('img, b').count()).toBe(0);
      expect(await page.evaluate(() => (globalThis as any).__xss)).toBeUndefined();
    } finally {
      await page.close();
      await proxy.close();
    }
  });
});
