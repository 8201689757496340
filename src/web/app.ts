import { Api, session } from './api.js';
import { fill, h } from './dom.js';
import { mountRun, type RunViewSettings } from './run-view.js';
import { mountRuns } from './runs-view.js';

/**
 * The web page at /ui: sign in with an API key, then the runs (#/runs) and one run (#/runs/<id>).
 * Its bounds come from the server, in the page's jetty-ui-settings meta tag.
 */
const main = document.getElementById('main')!;
const nav = document.getElementById('nav')!;
const settings = readSettings();
const api = new Api(() => signOut('Your key was refused (unknown or revoked). Sign in again.'));
let dispose: (() => void) | undefined;

function readSettings(): RunViewSettings {
  const fallback = { previewMaxBytes: 2 * 1024 * 1024, maxTimelineEvents: 5000 };
  const meta = document.querySelector('meta[name="jetty-ui-settings"]')?.getAttribute('content');
  try {
    return { ...fallback, ...(meta ? (JSON.parse(meta) as Partial<RunViewSettings>) : {}) };
  } catch {
    return fallback;
  }
}

function signOut(message?: string): void {
  session.clear();
  route(message);
}

function route(message?: string): void {
  dispose?.();
  dispose = undefined;
  if (!session.key) {
    fill(nav, h('a', { href: '/docs' }, 'API docs'));
    signIn(message);
    return;
  }
  fill(
    nav,
    h('a', { href: '#/runs' }, 'Runs'),
    h('a', { href: '/docs' }, 'API docs'),
    h('button', { type: 'button', onclick: () => signOut() }, 'Sign out'),
  );
  const m = /^#\/runs\/([^/?#]+)$/.exec(location.hash);
  dispose = m ? mountRun(main, api, decodeURIComponent(m[1]!), settings) : mountRuns(main, api);
}

function signIn(message?: string): void {
  const input = h('input', {
    type: 'password',
    name: 'api-key',
    autocomplete: 'off',
    placeholder: 'jrk_…',
    'aria-label': 'API key',
  });
  const error = h('p', { class: 'error' }, message ?? '');
  const form = h(
    'form',
    {
      class: 'card signin',
      onsubmit: (e) => {
        e.preventDefault();
        void tryKey(input.value.trim(), error);
      },
    },
    h('h1', {}, 'Sign in'),
    h(
      'p',
      { class: 'muted' },
      'Your collection’s API key. It stays in this tab (sessionStorage) and is sent only to this server.',
    ),
    input,
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
    error,
  );
  fill(main, form);
  input.focus();
}

async function tryKey(key: string, error: HTMLElement): Promise<void> {
  if (!key) {
    error.textContent = 'Paste an API key first.';
    return;
  }
  try {
    await api.json('/v1/runs?limit=1', {}, key);
  } catch (err) {
    error.textContent = `That key does not open a collection here: ${(err as Error).message}`;
    return;
  }
  session.set(key);
  if (!location.hash.startsWith('#/runs')) location.hash = '#/runs';
  route();
}

window.addEventListener('hashchange', () => route());
route();
