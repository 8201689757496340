import {
  evaluationSummary,
  formatBytes,
  formatCost,
  formatDuration,
  formatTokens,
  VARIANT_COLUMNS,
  type VariantFiguresLike,
  variantCells,
} from '../events/display.js';
import { type Api, ApiError } from './api.js';
import { append, fill, h, statusBadge } from './dom.js';
import { type Artifact, Previewer, previewKind } from './preview.js';
import type { RunRow } from './runs-view.js';
import { type Entry, Timeline } from './timeline.js';

interface RunRecord extends RunRow {
  provider: string;
  ended_at: string | null;
  sandbox_id: string | null;
  error: { code: string; message: string } | null;
  artifacts: Artifact[];
  missing_outputs: string[];
  labels: Record<string, string>;
  experiment_id?: string;
}

export interface RunViewSettings {
  previewMaxBytes: number;
  maxTimelineEvents: number;
}

const TERMINAL = ['completed', 'failed', 'cancelled'];
const MAX_RECONNECTS = 30;

/**
 * One run: its facts, evaluation, live timeline and artifacts. The timeline follows the event
 * stream and, when the connection drops, resumes after the last event it drew (Last-Event-ID).
 */
export function mountRun(main: HTMLElement, api: Api, id: string, settings: RunViewSettings): () => void {
  const stop = new AbortController();
  const ui = skeleton(main, id);
  const timeline = new Timeline(settings.maxTimelineEvents);
  const previewer = new Previewer(api, ui.preview, settings.previewMaxBytes);
  const drawn = new Map<number, HTMLElement>();

  const load = async () => {
    const rec = await api.json<RunRecord>(`/v1/runs/${encodeURIComponent(id)}`);
    if (!stop.signal.aborted) renderRecord(ui, rec, api, previewer);
    return rec;
  };
  const draw = (e: Entry) => {
    const el = entryElement(e, id);
    const old = drawn.get(e.key);
    if (old) {
      if (old.querySelector('details')?.open) el.querySelector('details')?.setAttribute('open', '');
      old.replaceWith(el);
    } else ui.timeline.append(el);
    drawn.set(e.key, el);
  };

  void (async () => {
    try {
      const rec = await load();
      ui.live.classList.add('on');
      await follow(
        api,
        id,
        timeline,
        stop.signal,
        (e) => {
          if (e) draw(e);
          ui.usage.textContent = `${formatTokens(timeline.usage.tokens)} tokens · ${formatCost(timeline.usage.costUsd, timeline.usage.costEstimated)}`;
          if (timeline.status) fill(ui.badge, statusBadge(timeline.status));
        },
        (m) => (ui.live.textContent = m),
      );
      if (
        !stop.signal.aborted &&
        (TERMINAL.includes(timeline.status ?? '') || !TERMINAL.includes(rec.status))
      )
        await load();
      ui.live.classList.remove('on');
      ui.live.textContent = 'ended';
    } catch (err) {
      if (stop.signal.aborted) return;
      ui.live.classList.remove('on');
      fill(
        ui.error,
        err instanceof ApiError && err.status === 404
          ? `No run ${id} in your collection.`
          : (err as Error).message,
      );
    }
  })();
  return () => {
    stop.abort();
    previewer.release();
  };
}

/** Follows the stream to its end, reconnecting after the last event seen when it drops. */
async function follow(
  api: Api,
  id: string,
  timeline: Timeline,
  signal: AbortSignal,
  onEntry: (e: Entry | null) => void,
  onState: (message: string) => void,
): Promise<void> {
  let failures = 0;
  while (!signal.aborted) {
    try {
      for await (const ev of api.events(id, timeline.lastId, signal)) {
        failures = 0;
        onEntry(timeline.apply(ev));
        if (ev.type === 'run.completed' || ev.type === 'run.failed' || ev.type === 'run.cancelled') return;
      }
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof ApiError && err.status < 500) throw err;
    }
    if (++failures > MAX_RECONNECTS) throw new Error('Lost the event stream; reload the page to try again.');
    onState(`reconnecting (${failures})…`);
    await new Promise((r) => setTimeout(r, Math.min(500 * 2 ** (failures - 1), 10_000)));
    onState('live');
  }
}

function skeleton(main: HTMLElement, id: string) {
  const ui = {
    badge: h('span'),
    live: h('span', { class: 'live', 'data-testid': 'live' }, 'live'),
    usage: h('span', { class: 'muted', 'data-testid': 'usage' }),
    error: h('p', { class: 'error' }),
    facts: h('div', { class: 'facts card', 'data-testid': 'facts' }),
    evaluation: h('div', { class: 'card', hidden: true, 'data-testid': 'evaluation' }),
    experiment: h('div', { class: 'card', hidden: true, 'data-testid': 'experiment' }),
    timeline: h('ol', { class: 'timeline', 'data-testid': 'timeline' }),
    artifacts: h('ul', { class: 'artifacts', 'data-testid': 'artifacts' }),
    preview: h('div', { class: 'preview-box', 'data-testid': 'preview' }),
    actions: h('span'),
  };
  fill(
    main,
    h('p', {}, h('a', { href: '#/runs' }, '← Runs')),
    h('h1', {}, 'Run ', h('span', { class: 'mono' }, id), ' ', ui.badge, ' ', ui.live, ' ', ui.actions),
    ui.error,
    ui.facts,
    ui.evaluation,
    ui.experiment,
    h(
      'div',
      { class: 'layout' },
      h('section', { class: 'card' }, h('h2', {}, 'Timeline ', ui.usage), ui.timeline),
      h('section', { class: 'card' }, h('h2', {}, 'Artifacts'), ui.artifacts, ui.preview),
    ),
  );
  return ui;
}

type Ui = ReturnType<typeof skeleton>;

function renderRecord(ui: Ui, rec: RunRecord, api: Api, previewer: Previewer): void {
  fill(ui.badge, statusBadge(rec.status));
  const fact = (label: string, value: string) => h('div', {}, h('span', {}, label), value);
  fill(
    ui.facts,
    fact('runtime', `${rec.agent}${rec.runtime_version ? ` ${rec.runtime_version}` : ''}`),
    fact('model', rec.model),
    fact('provider', rec.provider),
    fact('task', rec.task ?? '—'),
    fact('created', new Date(rec.created_at).toLocaleString()),
    fact('duration', formatDuration(rec.duration_ms)),
    fact('tokens', formatTokens(rec.usage.input_tokens + rec.usage.output_tokens)),
    fact('cost', formatCost(rec.usage.cost_usd, rec.usage.cost_estimated)),
  );
  if (rec.error)
    append(
      ui.facts,
      h('div', { class: 'error' }, h('span', {}, 'error'), `${rec.error.code}: ${rec.error.message}`),
    );
  if (rec.missing_outputs.length) append(ui.facts, fact('missing outputs', rec.missing_outputs.join(', ')));
  renderEvaluation(ui.evaluation, rec.evaluation);
  void renderExperiment(ui.experiment, rec, api);
  renderActions(ui, rec, api);
  fill(
    ui.artifacts,
    ...(rec.artifacts.length
      ? rec.artifacts.map((a) => artifactItem(rec.id, a, previewer, ui))
      : [h('li', { class: 'muted' }, TERMINAL.includes(rec.status) ? 'none' : 'none yet')]),
  );
}

function artifactItem(runId: string, a: Artifact, previewer: Previewer, ui: Ui): HTMLElement {
  const failed = (err: unknown) => fill(ui.preview, h('p', { class: 'error' }, (err as Error).message));
  return h(
    'li',
    { 'data-testid': `artifact-${a.path}` },
    h('span', { class: 'name mono' }, a.path),
    h('span', { class: 'muted' }, formatBytes(a.size)),
    previewKind(a)
      ? h('button', { type: 'button', onclick: () => void previewer.show(runId, a).catch(failed) }, 'Preview')
      : null,
    h(
      'button',
      { type: 'button', onclick: () => void previewer.download(runId, a).catch(failed) },
      'Download',
    ),
  );
}

function renderActions(ui: Ui, rec: RunRecord, api: Api): void {
  if (TERMINAL.includes(rec.status)) {
    fill(ui.actions);
    return;
  }
  fill(
    ui.actions,
    h(
      'button',
      {
        type: 'button',
        onclick: async () => {
          if (!confirm(`Cancel run ${rec.id}?`)) return;
          await api
            .json(`/v1/runs/${encodeURIComponent(rec.id)}/cancel`, { method: 'POST' })
            .catch((err: Error) => fill(ui.error, err.message));
        },
      },
      'Cancel run',
    ),
  );
}

type Fields = Record<string, unknown>;
const obj = (v: unknown): Fields | null =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Fields) : null;
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === 'string' && v ? v : null);

/**
 * The evaluation (docs/evaluation.md): the verdict and its one-line summary, the score, the checks
 * (each stage, each rubric criterion), the verification script's output folded, and the whole
 * object as JSON folded last, so a field this page does not know yet is still there.
 */
function renderEvaluation(box: HTMLElement, evaluation: unknown): void {
  box.hidden = evaluation === undefined || evaluation === null;
  if (box.hidden) return;
  const e = obj(evaluation) ?? {};
  const verdict = e.passed === true ? 'passed' : e.passed === false ? 'not passed' : (str(e.status) ?? '—');
  const badge = h(
    'span',
    {
      class: `status ${e.passed === true ? 'completed' : e.passed === false ? 'failed' : 'cancelled'}`,
      'data-testid': 'evaluation-verdict',
    },
    verdict,
  );
  const fact = (label: string, value: string | null) =>
    value === null ? null : h('div', {}, h('span', {}, label), value);
  const score = num(e.score);
  const max = num(e.max_score);
  const results = obj(e.results);
  const judge = str(e.judge_model);
  const when = str(e.evaluated_at);
  const facts = h(
    'div',
    { class: 'facts', 'data-testid': 'evaluation-facts' },
    fact('kind', str(e.kind)),
    fact('score', score === null ? '—' : max === null ? String(score) : `${score} of ${max}`),
    results
      ? fact(
          'checks',
          `${num(results.pass) ?? 0} passed · ${num(results.partial) ?? 0} partial · ${num(results.fail) ?? 0} failed`,
        )
      : null,
    fact('decided by', str(e.source)?.replace(/_/g, ' ') ?? null),
    judge ? fact('judge', `${judge}${str(e.judge_provider) ? ` · ${e.judge_provider}` : ''}`) : null,
    fact(
      'evaluated',
      when
        ? `${new Date(when).toLocaleString()}${num(e.number) && num(e.number)! > 1 ? ` (#${e.number}, ${str(e.trigger) ?? 'regrade'})` : ''}`
        : null,
    ),
  );
  const report = obj(e.agent_report);
  const disagreement =
    e.disagreement === true
      ? h(
          'p',
          { class: 'warning-text', 'data-testid': 'evaluation-disagreement' },
          `⚠ The agent's own report says overall_passed: ${String(report?.overall_passed)}; the server decided otherwise.`,
        )
      : null;
  const stages = Array.isArray(e.stages) ? e.stages.map(obj).filter((x): x is Fields => x !== null) : [];
  const rubric = Object.entries(obj(e.rubric_scores) ?? {}).flatMap(([key, v]) => {
    const c = obj(v);
    return c ? [{ key, c }] : [];
  });
  const verification = obj(e.verification);
  const output = [str(verification?.output), str(verification?.stderr)].filter(Boolean).join('\n');
  fill(
    box,
    h('h2', {}, 'Evaluation ', badge),
    // The badge and the score say the verdict; the sentence says why.
    h('p', { 'data-testid': 'evaluation-summary' }, str(e.summary) ?? evaluationSummary(evaluation)),
    facts,
    disagreement,
    stages.length
      ? h(
          'ul',
          { class: 'checks', 'data-testid': 'evaluation-stages' },
          ...stages.map((st) =>
            h(
              'li',
              { class: st.passed === true ? 'ok' : 'bad' },
              `${st.passed === true ? '✓' : '✗'} ${str(st.name) ?? ''}`,
            ),
          ),
        )
      : null,
    rubric.length
      ? h(
          'table',
          { class: 'variants', 'data-testid': 'evaluation-rubric' },
          h('thead', {}, h('tr', {}, h('th', {}, 'criterion'), h('th', {}, 'score'), h('th', {}, 'notes'))),
          h(
            'tbody',
            {},
            ...rubric.map(({ key, c }) =>
              h(
                'tr',
                {},
                h('td', {}, str(c.name) ?? key),
                h('td', {}, String(num(c.score) ?? '—')),
                h('td', {}, str(c.notes) ?? ''),
              ),
            ),
          ),
        )
      : null,
    output
      ? h(
          'details',
          { 'data-testid': 'evaluation-output' },
          h(
            'summary',
            {},
            `verification script output (exit ${verification?.exit_code === null ? 'none' : String(verification?.exit_code)}${verification?.timed_out === true ? ', timed out' : ''})`,
          ),
          h('pre', {}, output),
        )
      : null,
    h(
      'details',
      { 'data-testid': 'evaluation-json' },
      h('summary', {}, 'the whole evaluation (JSON)'),
      h('pre', {}, JSON.stringify(evaluation, null, 2)),
    ),
  );
}

interface ExperimentView {
  id: string;
  status: string;
  repeats?: number;
  grader?: { kind: string | null; judge_model: string | null; judge_provider: string | null };
  variants: VariantFiguresLike[];
}

/**
 * A run that belongs to an experiment (the label `experiment`) shows the experiment's variant
 * table, the same cells as `jetty ab` prints, this run's variant marked. Hidden when there is none.
 */
async function renderExperiment(box: HTMLElement, rec: RunRecord, api: Api): Promise<void> {
  const expId = rec.experiment_id ?? rec.labels?.experiment;
  if (!expId) return;
  const exp = await api
    .json<ExperimentView>(`/v1/experiments/${encodeURIComponent(expId)}`)
    .catch(() => null);
  if (!exp?.variants?.length) return;
  const mine = rec.labels?.variant;
  const g = exp.grader;
  const grader = g?.kind
    ? `graded ${g.kind}${g.judge_model ? ` by ${g.judge_model} (${g.judge_provider ?? '?'})` : ''}`
    : 'not graded (the runbook declares no evaluation)';
  box.hidden = false;
  fill(
    box,
    h('h2', {}, 'Experiment ', h('span', { class: 'mono' }, exp.id), ' ', statusBadge(exp.status)),
    h(
      'p',
      { class: 'muted' },
      `${exp.variants.length} variant(s) × ${exp.repeats ?? exp.variants[0]!.runs} run(s), ${grader}.`,
      mine ? ` This run is of ${mine}.` : '',
    ),
    h(
      'table',
      { class: 'variants', 'data-testid': 'variants' },
      h('thead', {}, h('tr', {}, ...VARIANT_COLUMNS.map((c) => h('th', {}, c)))),
      h(
        'tbody',
        {},
        ...exp.variants.map((v) =>
          h(
            'tr',
            { 'data-testid': `variant-${v.name}`, class: v.name === mine ? 'current' : undefined },
            ...variantCells(v).map((c) => h('td', {}, c)),
          ),
        ),
      ),
    ),
  );
}

function entryElement(e: Entry, runId: string): HTMLElement {
  switch (e.kind) {
    case 'lifecycle':
    case 'artifact':
      return h('li', { class: 'lifecycle' }, e.text);
    case 'message':
    case 'reasoning':
      return h('li', { class: e.kind }, e.text);
    case 'warning':
      return h('li', { class: 'warning' }, `⚠ ${e.text}`);
    case 'log':
      return h(
        'li',
        { class: 'lifecycle' },
        h(
          'details',
          {},
          h('summary', {}, `${e.lines.length} log line${e.lines.length === 1 ? '' : 's'}`),
          h('pre', {}, e.lines.join('\n')),
        ),
      );
    case 'end':
      return h('li', { class: `end ${e.status}`, 'data-testid': 'timeline-end' }, e.text);
    case 'overflow':
      return h(
        'li',
        { class: 'warning' },
        `${e.count} more event(s) not drawn (UI_MAX_TIMELINE_EVENTS); the whole trajectory is GET /v1/runs/${runId}/trajectory`,
      );
    case 'tool':
      return h(
        'li',
        { class: `tool${e.result?.isError ? ' error' : ''}`, 'data-testid': 'tool-call' },
        h(
          'details',
          {},
          h('summary', { class: 'mono' }, `→ ${e.line}`, e.result ? (e.result.isError ? ' ✗' : ' ✓') : ' …'),
          h('div', { class: 'muted' }, 'input'),
          h('pre', {}, e.input),
          e.result
            ? h('div', { class: 'muted' }, `result${e.result.truncated ? ' (truncated by the server)' : ''}`)
            : null,
          e.result ? h('pre', { 'data-testid': 'tool-result' }, e.result.output) : null,
        ),
      );
  }
}
