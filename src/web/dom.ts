/**
 * The one way this page makes elements. Text goes in through text nodes only (never innerHTML),
 * so nothing a run produced can become markup; links are limited to this page and blob URLs.
 */
export type Child = Node | string | number | null | undefined | false;

export interface Props {
  class?: string;
  title?: string;
  href?: string;
  type?: string;
  value?: string;
  placeholder?: string;
  autocomplete?: string;
  name?: string;
  id?: string;
  download?: string;
  checked?: boolean;
  disabled?: boolean;
  hidden?: boolean;
  src?: string;
  alt?: string;
  open?: boolean;
  'data-testid'?: string;
  'data-status'?: string;
  'aria-label'?: string;
  onclick?: (ev: MouseEvent) => void;
  onchange?: (ev: Event) => void;
  onsubmit?: (ev: SubmitEvent) => void;
}

const SAFE_URL = /^(#|\/(?!\/)|blob:)/;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === false) continue;
    if (k === 'onclick' || k === 'onchange' || k === 'onsubmit') {
      el.addEventListener(k.slice(2), v as EventListener);
    } else if (k === 'href' || k === 'src') {
      if (!SAFE_URL.test(String(v))) throw new Error(`refusing the URL ${String(v)}`);
      el.setAttribute(k, String(v));
    } else if (k === 'value' && 'value' in el) {
      (el as HTMLInputElement).value = String(v);
    } else if (k === 'checked' && 'checked' in el) {
      (el as HTMLInputElement).checked = v === true;
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, ...children);
  return el;
}

export function append(el: Node, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

/** Replaces an element's content. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, ...children);
}

export function statusBadge(status: string): HTMLElement {
  return h('span', { class: `status ${status}`, 'data-status': status }, status);
}
