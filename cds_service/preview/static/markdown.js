// A small Markdown subset for card details, rendered SAFELY: it only ever creates elements by name and
// text nodes, never parses HTML, so card text cannot inject markup or script whatever it holds.
// Blocks: paragraphs, headings (as bold paragraphs), bullet and numbered lists, GitHub tables.
// Inline: **bold**, *emphasis*, `code`, [links](http(s) only), backslash escapes.

const LIST_ITEM = /^\s*(?:([-*+])|(\d+)[.)])\s+(.*)$/;
const TABLE_SEPARATOR = /^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$/;
const HEADING = /^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$/;

/** The URL of a link if it is http or https, else null (javascript:, data:, relative… are dropped). */
export function safeUrl(raw) {
  try {
    const url = new URL(raw.trim());
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

function el(name, ...children) {
  const node = document.createElement(name);
  for (const child of children) node.append(child);
  return node;
}

// Closing delimiter `marker` at or after `from`, not escaped; -1 if none.
function closing(text, marker, from) {
  for (let i = from; i <= text.length - marker.length; i += 1) {
    if (text[i] === '\\') {
      i += 1;
    } else if (text.startsWith(marker, i)) {
      return i;
    }
  }
  return -1;
}

/** Inline Markdown of one block as DOM nodes (an array of Nodes). */
export function renderInline(text) {
  const nodes = [];
  let plain = '';
  const flush = () => {
    if (plain) nodes.push(document.createTextNode(plain));
    plain = '';
  };
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (ch === '\\' && i + 1 < text.length && /[!-/:-@[-`{-~]/.test(text[i + 1])) {
      plain += text[i + 1];
      i += 2;
      continue;
    }
    if (ch === '`') {
      const end = text.indexOf('`', i + 1);
      if (end > i) {
        flush();
        nodes.push(el('code', text.slice(i + 1, end)));
        i = end + 1;
        continue;
      }
    }
    if (text.startsWith('**', i) || text.startsWith('__', i)) {
      const marker = text.slice(i, i + 2);
      const end = closing(text, marker, i + 2);
      if (end > i + 2) {
        flush();
        nodes.push(el('strong', ...renderInline(text.slice(i + 2, end))));
        i = end + 2;
        continue;
      }
    }
    if (ch === '*' && text[i + 1] && text[i + 1] !== ' ') {
      const end = closing(text, '*', i + 1);
      if (end > i + 1) {
        flush();
        nodes.push(el('em', ...renderInline(text.slice(i + 1, end))));
        i = end + 1;
        continue;
      }
    }
    if (ch === '[') {
      const labelEnd = closing(text, '](', i + 1);
      const urlEnd = labelEnd > i ? text.indexOf(')', labelEnd + 2) : -1;
      if (urlEnd > labelEnd) {
        flush();
        const label = renderInline(text.slice(i + 1, labelEnd));
        const url = safeUrl(text.slice(labelEnd + 2, urlEnd));
        if (url) {
          const link = el('a', ...label);
          link.href = url;
          link.rel = 'noopener noreferrer';
          link.target = '_blank';
          nodes.push(link);
        } else {
          nodes.push(...label); // an unsafe link keeps its words, loses its target
        }
        i = urlEnd + 1;
        continue;
      }
    }
    plain += ch;
    i += 1;
  }
  flush();
  return nodes;
}

function cells(line) {
  let row = line.trim();
  if (row.startsWith('|')) row = row.slice(1);
  if (row.endsWith('|') && !row.endsWith('\\|')) row = row.slice(0, -1);
  const found = [];
  let cell = '';
  for (let i = 0; i < row.length; i += 1) {
    if (row[i] === '\\' && row[i + 1] === '|') {
      cell += '\\|';
      i += 1;
    } else if (row[i] === '|') {
      found.push(cell.trim());
      cell = '';
    } else {
      cell += row[i];
    }
  }
  found.push(cell.trim());
  return found;
}

function table(lines) {
  const head = el('thead', el('tr', ...cells(lines[0]).map((c) => el('th', ...renderInline(c)))));
  const body = el('tbody', ...lines.slice(2).map((line) => el('tr', ...cells(line).map((c) => el('td', ...renderInline(c))))));
  return el('table', head, body);
}

/** A card's Markdown detail as a DocumentFragment of safe DOM nodes. */
export function renderMarkdown(source) {
  const fragment = document.createDocumentFragment();
  const lines = String(source ?? '').replace(/\r\n?/g, '\n').split('\n');
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i += 1;
      continue;
    }
    if (line.trim().startsWith('|') && i + 1 < lines.length && TABLE_SEPARATOR.test(lines[i + 1])) {
      const rows = [line, lines[i + 1]];
      i += 2;
      while (i < lines.length && lines[i].trim().startsWith('|')) rows.push(lines[i++]);
      fragment.append(table(rows));
      continue;
    }
    const item = LIST_ITEM.exec(line);
    if (item) {
      const list = el(item[1] ? 'ul' : 'ol');
      while (i < lines.length) {
        const next = LIST_ITEM.exec(lines[i]);
        if (next && Boolean(next[1]) === Boolean(item[1])) {
          list.append(el('li', ...renderInline(next[3])));
        } else if (lines[i].trim() && /^\s+/.test(lines[i]) && list.lastChild) {
          list.lastChild.append(' ', ...renderInline(lines[i].trim())); // a continuation line
        } else {
          break;
        }
        i += 1;
      }
      fragment.append(list);
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      fragment.append(el('p', el('strong', ...renderInline(heading[1]))));
      i += 1;
      continue;
    }
    const paragraph = [];
    while (i < lines.length && lines[i].trim() && !LIST_ITEM.exec(lines[i]) && !HEADING.exec(lines[i])
           && !(lines[i].trim().startsWith('|') && TABLE_SEPARATOR.test(lines[i + 1] ?? ''))) {
      paragraph.push(lines[i].trim());
      i += 1;
    }
    fragment.append(el('p', ...renderInline(paragraph.join(' '))));
  }
  return fragment;
}
