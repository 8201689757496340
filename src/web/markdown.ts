/**
 * Just enough markdown to preview a report: headings, paragraphs, lists, quotes, code blocks and
 * inline code, bold and italics. It yields a plain structure (no HTML), which preview.ts turns
 * into elements with text nodes; links are shown as their text and address, never followed.
 */
export type Inline = { kind: 'text' | 'code' | 'strong' | 'em'; text: string };
export type Block =
  | { kind: 'heading'; level: number; inline: Inline[] }
  | { kind: 'paragraph' | 'quote'; inline: Inline[] }
  | { kind: 'list'; ordered: boolean; items: Inline[][] }
  | { kind: 'code'; text: string }
  | { kind: 'rule' };

export function parseMarkdown(src: string): Block[] {
  const lines = src.replace(/\r\n?/g, '\n').split('\n');
  const blocks: Block[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    if (/^\s*```/.test(line)) {
      const body: string[] = [];
      for (i++; i < lines.length && !/^\s*```/.test(lines[i]!); i++) body.push(lines[i]!);
      blocks.push({ kind: 'code', text: body.join('\n') });
      i++;
      continue;
    }
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    if (heading) {
      blocks.push({ kind: 'heading', level: heading[1]!.length, inline: inline(heading[2]!) });
    } else if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
      blocks.push({ kind: 'rule' });
    } else if (/^\s*([-*+]|\d+[.)])\s+/.test(line)) {
      const ordered = /^\s*\d/.test(line);
      const items: Inline[][] = [];
      for (; i < lines.length && /^\s*([-*+]|\d+[.)])\s+/.test(lines[i]!); i++) {
        items.push(inline(lines[i]!.replace(/^\s*([-*+]|\d+[.)])\s+/, '')));
      }
      blocks.push({ kind: 'list', ordered, items });
      continue;
    } else if (line.trim() !== '') {
      const quote = line.startsWith('>');
      const body: string[] = [];
      for (
        ;
        i < lines.length &&
        lines[i]!.trim() !== '' &&
        startsPlain(lines[i]!) &&
        lines[i]!.startsWith('>') === quote;
        i++
      ) {
        body.push(quote ? lines[i]!.replace(/^>\s?/, '') : lines[i]!);
      }
      blocks.push({ kind: quote ? 'quote' : 'paragraph', inline: inline(body.join(' ')) });
      continue;
    }
    i++;
  }
  return blocks;
}

function startsPlain(line: string): boolean {
  return !/^(#{1,6}\s|\s*```|\s*([-*+]|\d+[.)])\s+)/.test(line);
}

function inline(text: string): Inline[] {
  const out: Inline[] = [];
  const re = /`([^`]+)`|\*\*([^*]+)\*\*|__([^_]+)__|\*([^*\s][^*]*)\*|\[([^\]]+)\]\(([^)\s]+)\)/g;
  let at = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m.index > at) out.push({ kind: 'text', text: text.slice(at, m.index) });
    if (m[1] !== undefined) out.push({ kind: 'code', text: m[1] });
    else if (m[2] !== undefined || m[3] !== undefined) out.push({ kind: 'strong', text: (m[2] ?? m[3])! });
    else if (m[4] !== undefined) out.push({ kind: 'em', text: m[4] });
    else out.push({ kind: 'text', text: `${m[5]} (${m[6]})` });
    at = m.index + m[0].length;
  }
  if (at < text.length) out.push({ kind: 'text', text: text.slice(at) });
  return out;
}
