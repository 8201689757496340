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
  const state = { status: '', task: '', auto: true, extra: [] as RunRow[], cursor: null as string | null };
  const body = h('tbody');
  const note = h('p', { class: 'muted' });
  const more = h(
    'button',
    {
      type: 'button',
      onclick: () =>
        void loadMore().catch((err: Error) => {
          note.textContent = `Could not load more runs: ${err.message}`;
          note.classList.add('error');
        }),
    },
    'Load more',
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  let disposed = false;

  const statusSel = h(
    'select',
    {
      'aria-label': 'status',
      'data-testid': 'status-filter',
      onchange: (e) => {
        state.status = (e.target as HTMLSelectElement).value;
        void refresh(true);
      },
    },
    h('option', { value: '' }, 'all statuses'),
    ...STATUSES.map((s) => h('option', { value: s }, s)),
  );
  const taskInput = h('input', {
    type: 'search',
    placeholder: 'task',
    'aria-label': 'task',
    onchange: (e) => {
      state.task = (e.target as HTMLInputElement).value.trim();
      void refresh(true);
    },
  });
  const auto = h('input', {
    type: 'checkbox',
    checked: true,
    onchange: (e) => {
      state.auto = (e.target as HTMLInputElement).checked;
      schedule();
    },
  });
  fill(
    main,
    h('h1', {}, 'Runs'),
    h('div', { class: 'filters' }, statusSel, taskInput, h('label', {}, auto, ' auto-refresh')),
    h(
      'table',
      { 'data-testid': 'runs' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ...['Run', 'Status', 'Runtime', 'Model', 'Created', 'Duration', 'Cost', 'Evaluation'].map((c) =>
            h('th', {}, c),
          ),
        ),
      ),
      body,
    ),
    note,
    more,
  );

  const query = (cursor?: string) => {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (state.status) q.set('status', state.status);
    if (state.task) q.set('task', state.task);
    if (cursor) q.set('cursor', cursor);
    return `/v1/runs?${q}`;
  };

  async function refresh(reset = false): Promise<void> {
    if (reset) state.extra = [];
    try {
      const page = await api.json<{ data: RunRow[]; next_cursor: string | null }>(query());
      if (disposed) return;
      if (reset || !state.extra.length) state.cursor = page.next_cursor;
      const seen = new Set(page.data.map((r) => r.id));
      render([...page.data, ...state.extra.filter((r) => !seen.has(r.id))]);
      note.textContent = page.data.length ? '' : 'No runs yet. Start one with `jetty run RUNBOOK.md`.';
      note.classList.remove('error');
    } catch (err) {
      if (disposed) return;
      note.textContent = `Could not load the runs: ${(err as Error).message}`;
      note.classList.add('error');
    }
    more.hidden = !state.cursor;
    schedule();
  }

  async function loadMore(): Promise<void> {
    if (!state.cursor) return;
    const page = await api.json<{ data: RunRow[]; next_cursor: string | null }>(query(state.cursor));
    state.extra.push(...page.data);
    state.cursor = page.next_cursor;
    await refresh();
  }

  function schedule(): void {
    clearTimeout(timer);
    if (state.auto && !disposed) timer = setTimeout(() => void refresh(), REFRESH_MS);
  }

  function render(rows: RunRow[]): void {
    fill(body, ...rows.map(row));
  }

  void refresh(true);
  return () => {
    disposed = true;
    clearTimeout(timer);
  };
}

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
    h('td', {}, evaluationSummary(r.evaluation, 60) || '—'),
  );
}
