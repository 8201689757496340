import { formatBytes } from '../events/display.js';
import type { Api } from './api.js';
import { append, fill, h } from './dom.js';
import { type Inline, parseMarkdown } from './markdown.js';

export interface Artifact {
  path: string;
  size: number;
  sha256: string;
  content_type: string;
}

const TEXT_EXT = /\.(txt|csv|tsv|log|py|js|ts|sh|ya?ml|toml|ini|xml|html?|css|sql|diff|patch)$/i;

type Kind = 'image' | 'json' | 'markdown' | 'text' | null;

export function previewKind(a: Pick<Artifact, 'path' | 'content_type'>): Kind {
  const t = a.content_type.toLowerCase();
  if (t.startsWith('image/')) return 'image';
  if (t.includes('json') || /\.json$/i.test(a.path)) return 'json';
  if (t.includes('markdown') || /\.(md|markdown)$/i.test(a.path)) return 'markdown';
  if (t.startsWith('text/') || TEXT_EXT.test(a.path)) return 'text';
  return null;
}

const artifactPath = (runId: string, p: string) =>
  `/v1/runs/${encodeURIComponent(runId)}/artifacts/${p.split('/').map(encodeURIComponent).join('/')}`;

/**
 * Artifacts are fetched with the key (a plain link could not carry it) and shown from a blob:
 * images as <img>, JSON pretty-printed, markdown drawn from its structure, text as text. Past
 * UI_PREVIEW_MAX_BYTES a file is offered for download only.
 */
export class Previewer {
  private url: string | undefined;

  constructor(
    private readonly api: Api,
    private readonly box: HTMLElement,
    private readonly maxBytes: number,
  ) {}

  async show(runId: string, a: Artifact): Promise<void> {
    this.release();
    const kind = previewKind(a);
    const title = h('h2', {}, a.path);
    if (!kind)
      return fill(
        this.box,
        title,
        h('p', { class: 'muted' }, `No preview for ${a.content_type}; download it.`),
      );
    if (a.size > this.maxBytes) {
      return fill(
        this.box,
        title,
        h(
          'p',
          { class: 'muted' },
          `${formatBytes(a.size)} is over the preview limit of ${formatBytes(this.maxBytes)} (UI_PREVIEW_MAX_BYTES); download it.`,
        ),
      );
    }
    fill(this.box, title, h('p', { class: 'muted' }, 'Loading…'));
    const blob = await this.api.blob(artifactPath(runId, a.path));
    fill(this.box, title, await this.render(kind, blob, a));
  }

  async download(runId: string, a: Artifact): Promise<void> {
    const blob = await this.api.blob(artifactPath(runId, a.path));
    const url = URL.createObjectURL(blob);
    const link = h('a', { href: url, download: a.path.split('/').pop() ?? 'artifact' });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }

  release(): void {
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = undefined;
  }

  private async render(kind: NonNullable<Kind>, blob: Blob, a: Artifact): Promise<HTMLElement> {
    if (kind === 'image') {
      this.url = URL.createObjectURL(blob);
      return h('img', { src: this.url, alt: a.path, 'data-testid': 'preview-image' });
    }
    const text = await blob.text();
    if (kind === 'markdown') return markdown(text);
    if (kind === 'json') {
      let shown = text;
      try {
        shown = JSON.stringify(JSON.parse(text), null, 2);
      } catch {
        // Not valid JSON after all: show it as it is.
      }
      return h('pre', { class: 'preview', 'data-testid': 'preview-text' }, shown);
    }
    return h('pre', { class: 'preview', 'data-testid': 'preview-text' }, text);
  }
}

function markdown(text: string): HTMLElement {
  const root = h('div', { class: 'md', 'data-testid': 'preview-markdown' });
  for (const b of parseMarkdown(text)) {
    if (b.kind === 'heading') append(root, inline(h(`h${Math.min(b.level + 1, 6)}` as 'h2'), b.inline));
    else if (b.kind === 'paragraph') append(root, inline(h('p'), b.inline));
    else if (b.kind === 'quote') append(root, inline(h('blockquote'), b.inline));
    else if (b.kind === 'code') append(root, h('pre', { class: 'preview' }, b.text));
    else if (b.kind === 'rule') append(root, h('hr'));
    else if (b.kind === 'list')
      append(root, h(b.ordered ? 'ol' : 'ul', {}, ...b.items.map((it) => inline(h('li'), it))));
  }
  return root;
}

function inline<E extends HTMLElement>(el: E, parts: Inline[]): E {
  for (const p of parts) {
    append(
      el,
      p.kind === 'text'
        ? p.text
        : h(p.kind === 'code' ? 'code' : p.kind === 'strong' ? 'strong' : 'em', {}, p.text),
    );
  }
  return el;
}
