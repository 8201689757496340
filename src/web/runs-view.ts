import { evaluationSummary, formatCost, formatDuration, formatElapsed } from '../events/display.js';
import type { Api } from './api.js';
import { fill, h, statusBadge } from './dom.js';

export interface RunRow {
  id: string;
  status: string;
  agent: string;
  model: string;
  task: string | null;
  created_at: string;
  started_at: string | null;
  duration_ms: number | null;
  runtime_version: string | null;
  usage: { input_tokens: number; output_tokens: number; cost_usd: number | null; cost_estimated: boolean };
  evaluation?: unknown;
}

const STATUSES = ['pending', 'running', 'completed', 'failed', 'cancelled'];
const REFRESH_MS = 3000;
const PAGE = 50;

/**
 * The collection's runs, newest first, with filters; the first page is fetched again every few
 * seconds while auto-refresh is on, so statuses move without a reload.
 */
export function mountRuns(main: HTMLElement, api: Api): () => void {
  const list = new RunsList(api);
  fill(main, h('h1', {}, 'Runs'), list.controls(), list.table(), list.note, list.more);
  void list.refresh(true);
  return () => list.dispose();
}

type Page = { data: RunRow[]; next_cursor: string | null };

class RunsList {
  readonly note = h('p', { class: 'muted' });
  readonly more = h('button', { type: 'button', onclick: () => void this.loadMore() }, 'Load more');
  private readonly body = h('tbody');
  private status = '';
  private task = '';
  private auto = true;
  /** Rows of the pages after the first, kept while the first page refreshes. */
  private extra: RunRow[] = [];
  private cursor: string | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private disposed = false;

  constructor(private readonly api: Api) {}

  controls(): HTMLElement {
    const status = h(
      'select',
      {
        'aria-label': 'status',
        'data-testid': 'status-filter',
        onchange: (e) => this.filter({ status: value(e) }),
      },
      h('option', { value: '' }, 'all statuses'),
      ...STATUSES.map((s) => h('option', { value: s }, s)),
    );
    const task = h('input', {
      type: 'search',
      placeholder: 'task',
      'aria-label': 'task',
      onchange: (e) => this.filter({ task: value(e).trim() }),
    });
    const auto = h('input', {
      type: 'checkbox',
      checked: true,
      onchange: (e) => {
        this.auto = (e.target as HTMLInputElement).checked;
        this.schedule();
      },
    });
    return h('div', { class: 'filters' }, status, task, h('label', {}, auto, ' auto-refresh'));
  }

  table(): HTMLElement {
    const head = ['Run', 'Status', 'Runtime', 'Model', 'Created', 'Duration', 'Cost', 'Evaluation'];
    return h(
      'table',
      { 'data-testid': 'runs' },
      h('thead', {}, h('tr', {}, ...head.map((c) => h('th', {}, c)))),
      this.body,
    );
  }

  async refresh(reset = false): Promise<void> {
    if (reset) this.extra = [];
    try {
      const page = await this.api.json<Page>(this.query());
      if (this.disposed) return;
      if (reset || !this.extra.length) this.cursor = page.next_cursor;
      const seen = new Set(page.data.map((r) => r.id));
      fill(this.body, ...[...page.data, ...this.extra.filter((r) => !seen.has(r.id))].map(row));
      this.say(page.data.length ? '' : 'No runs yet. Start one with `jetty run RUNBOOK.md`.');
    } catch (err) {
      if (this.disposed) return;
      this.say(`Could not load the runs: ${(err as Error).message}`, true);
    }
    this.more.hidden = !this.cursor;
    this.schedule();
  }

  dispose(): void {
    this.disposed = true;
    clearTimeout(this.timer);
  }

  private filter(change: { status?: string; task?: string }): void {
    this.status = change.status ?? this.status;
    this.task = change.task ?? this.task;
    void this.refresh(true);
  }

  private async loadMore(): Promise<void> {
    if (!this.cursor) return;
    try {
      const page = await this.api.json<Page>(this.query(this.cursor));
      this.extra.push(...page.data);
      this.cursor = page.next_cursor;
    } catch (err) {
      this.say(`Could not load more runs: ${(err as Error).message}`, true);
      return;
    }
    await this.refresh();
  }

  private query(cursor?: string): string {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (this.status) q.set('status', this.status);
    if (this.task) q.set('task', this.task);
    if (cursor) q.set('cursor', cursor);
    return `/v1/runs?${q}`;
  }

  private schedule(): void {
    clearTimeout(this.timer);
    if (this.auto && !this.disposed) this.timer = setTimeout(() => void this.refresh(), REFRESH_MS);
  }

  private say(text: string, error = false): void {
    this.note.textContent = text;
    this.note.classList.toggle('error', error);
  }
}

const value = (e: Event) => (e.target as HTMLInputElement | HTMLSelectElement).value;

function row(r: RunRow): HTMLTableRowElement {
  const duration =
    r.duration_ms !== null
      ? formatDuration(r.duration_ms)
      : r.status === 'running' && r.started_at
        ? `${formatElapsed(Date.now() - Date.parse(r.started_at))} so far`
        : '—';
  return h(
    'tr',
    { 'data-testid': `run-${r.id}` },
    h('td', { class: 'mono' }, h('a', { href: `#/runs/${encodeURIComponent(r.id)}` }, r.id)),
    h('td', {}, statusBadge(r.status)),
    h('td', {}, r.agent, r.runtime_version ? h('span', { class: 'muted' }, ` ${r.runtime_version}`) : null),
    h('td', {}, r.model),
    h('td', { title: r.created_at }, new Date(r.created_at).toLocaleString()),
    h('td', {}, duration),
    h('td', {}, formatCost(r.usage.cost_usd, r.usage.cost_estimated)),
    h(
      'td',
      { 'data-testid': 'evaluation', title: evaluationSummary(r.evaluation) || undefined },
      evaluationSummary(r.evaluation, 60) || '—',
    ),
  );
}
