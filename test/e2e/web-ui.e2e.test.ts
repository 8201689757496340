import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cuttingProxy } from '../support/cutting-proxy.js';
import { type Harness, runbookRequest, startHarness } from '../support/harness.js';
import { runSandboxesOf } from '../support/sandboxes.js';

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
  const left = await runSandboxesOf(docker, h.instance);
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
