/**
 * The shell of the web page at /ui: an empty document whose script (dist/ui/web/app.js) draws
 * everything with DOM calls. Its settings travel in a meta tag as JSON, escaped for the attribute.
 */
export interface UiSettings {
  /** Largest artifact shown inline; bigger ones are offered for download only. */
  previewMaxBytes: number;
  /** Timeline entries a run page keeps; past it, the page says so and links the trajectory. */
  maxTimelineEvents: number;
}

const attr = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function indexHtml(settings: UiSettings): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="jetty-ui-settings" content="${attr(JSON.stringify(settings))}">
<title>Runs · runbook runtime</title>
<link rel="stylesheet" href="/ui/style.css">
<script type="module" src="/ui/web/app.js"></script>
</head>
<body>
<header class="top"><a class="brand" href="#/runs">runbook runtime</a><nav id="nav"></nav></header>
<main id="main"><p class="muted">Loading…</p></main>
<noscript>This page needs JavaScript. The same data is at /v1/runs (see /docs).</noscript>
</body>
</html>
`;
}

export const STYLE_CSS = `
:root { --fg: #1d232b; --muted: #66707c; --line: #dfe3e8; --bg: #f6f7f9; --card: #fff;
  --ok: #1a7f37; --bad: #c4302b; --warn: #9a6700; --run: #0b63c5; --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
a { color: var(--run); text-decoration: none; } a:hover { text-decoration: underline; }
.top { display: flex; align-items: center; gap: 16px; padding: 10px 20px; background: #111820; color: #fff; }
.top a { color: #fff; } .brand { font-weight: 600; } #nav { margin-left: auto; display: flex; gap: 12px; align-items: center; }
#nav button { background: transparent; color: #cfd6de; border: 1px solid #3a4550; }
main { max-width: 1180px; margin: 0 auto; padding: 20px; }
h1 { font-size: 20px; margin: 0 0 12px; } h2 { font-size: 15px; margin: 20px 0 8px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; margin-bottom: 14px; }
.muted { color: var(--muted); } .mono { font-family: var(--mono); font-size: 12.5px; }
button, select, input { font: inherit; padding: 5px 10px; border: 1px solid var(--line); border-radius: 6px; background: #fff; color: var(--fg); }
button { cursor: pointer; } button.primary { background: var(--run); border-color: var(--run); color: #fff; }
.signin { max-width: 440px; margin: 60px auto; } .signin input { width: 100%; margin: 8px 0 12px; font-family: var(--mono); }
.error { color: var(--bad); white-space: pre-wrap; }
.filters { display: flex; gap: 10px; align-items: center; margin-bottom: 12px; flex-wrap: wrap; }
table { width: 100%; border-collapse: collapse; background: var(--card); border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #fafbfc; font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
tr:last-child td { border-bottom: 0; } tbody tr:hover { background: #f8fafc; }
.status { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; background: #eef1f4; color: var(--muted); }
.status.completed { background: #dafbe1; color: var(--ok); } .status.failed { background: #ffebe9; color: var(--bad); }
.status.running { background: #ddf4ff; color: var(--run); } .status.cancelled { background: #fff8c5; color: var(--warn); }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 8px 16px; }
.facts div span { display: block; font-size: 11.5px; color: var(--muted); text-transform: uppercase; letter-spacing: .03em; }
.layout { display: grid; grid-template-columns: minmax(0, 1fr) 340px; gap: 16px; } @media (max-width: 900px) { .layout { grid-template-columns: 1fr; } }
.timeline { list-style: none; margin: 0; padding: 0; }
.timeline > li { padding: 7px 0 7px 12px; border-left: 3px solid var(--line); margin-left: 2px; }
.timeline .message { border-color: var(--run); white-space: pre-wrap; }
.timeline .reasoning { color: var(--muted); font-style: italic; white-space: pre-wrap; }
.timeline .tool { border-color: #8250df; } .timeline .tool.error { border-color: var(--bad); }
.timeline .warning { border-color: var(--warn); color: var(--warn); }
.timeline .lifecycle { color: var(--muted); } .timeline .end.completed { color: var(--ok); border-color: var(--ok); }
.timeline .end.failed { color: var(--bad); border-color: var(--bad); } .timeline .end.cancelled { color: var(--warn); border-color: var(--warn); }
details > summary { cursor: pointer; overflow-wrap: anywhere; } details pre, pre.preview { background: #f6f8fa; border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; overflow: auto; max-height: 420px; white-space: pre-wrap; word-break: break-word; font: 12.5px/1.4 var(--mono); margin: 6px 0 0; }
.artifacts li { display: flex; gap: 8px; align-items: baseline; padding: 4px 0; } .artifacts { list-style: none; padding: 0; margin: 0; }
.artifacts .name { flex: 1; word-break: break-all; }
.preview-box { margin-top: 10px; } .preview-box img { max-width: 100%; border: 1px solid var(--line); border-radius: 6px; }
.md h1, .md h2, .md h3 { margin: 10px 0 6px; } .md p { margin: 6px 0; } .md code { font-family: var(--mono); background: #f0f2f4; padding: 0 3px; border-radius: 3px; }
.live { font-size: 12px; color: var(--muted); } .live.on::before { content: "● "; color: var(--ok); }
.variants td, .variants th { font-size: 12.5px; } .variants tr.current td { background: #f1f8ff; font-weight: 600; }
.checks { list-style: none; padding: 0; margin: 8px 0 0; } .checks li { padding: 2px 0; } .checks .ok { color: var(--ok); } .checks .bad { color: var(--bad); }
.warning-text { color: var(--warn); }
`;
