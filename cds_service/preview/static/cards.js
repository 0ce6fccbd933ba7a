// A CDS Hooks card as an EHR shows it: indicator colour, summary, Markdown detail, source, links,
// suggestion buttons and override reasons. Only text nodes and elements are created (no HTML parsing).

import { renderMarkdown, safeUrl } from './markdown.js';

const INDICATORS = new Set(['info', 'warning', 'critical']);

function el(name, className, ...children) {
  const node = document.createElement(name);
  if (className) node.className = className;
  for (const child of children) node.append(child);
  return node;
}

function link(label, url) {
  const safe = safeUrl(String(url ?? ''));
  if (!safe) return document.createTextNode(String(label ?? ''));
  const a = el('a', '', String(label ?? safe));
  a.href = safe;
  a.rel = 'noopener noreferrer';
  a.target = '_blank';
  return a;
}

/**
 * The element of one card. `handlers.suggest(card, suggestion, element)` applies a suggestion;
 * `handlers.override(card, reason, comment, element)` dismisses the card with a reason.
 */
export function renderCard(card, handlers = {}) {
  const indicator = INDICATORS.has(card.indicator) ? card.indicator : 'info';
  const node = el('article', `card indicator-${indicator}`);
  node.dataset.indicator = indicator;
  const rule = card.extension?.dexfree?.rule;
  if (typeof rule === 'string') node.dataset.rule = rule;
  if (typeof card.uuid === 'string') node.dataset.uuid = card.uuid;

  node.append(el('div', 'indicator', indicator));
  node.append(el('div', 'summary', String(card.summary ?? '')));
  if (card.detail) node.append(el('div', 'detail', renderMarkdown(card.detail)));

  if (card.source) {
    const source = el('div', 'source', 'Source: ', link(card.source.label, card.source.url));
    if (card.source.topic?.display) source.append(` · ${card.source.topic.display}`);
    node.append(source);
  }
  const links = (card.links ?? []).filter((l) => l && l.label);
  if (links.length) {
    node.append(el('div', 'links', ...links.map((l) => (l.type === 'smart'
      ? document.createTextNode(`${l.label} (SMART app, not launched here)`)
      : link(l.label, l.url)))));
  }

  const state = el('div', 'feedback-state');
  state.setAttribute('role', 'status');
  const suggestions = card.suggestions ?? [];
  if (suggestions.length) {
    const box = el('div', 'suggestions');
    for (const suggestion of suggestions) {
      const button = el('button', 'suggestion', String(suggestion.label ?? 'Apply suggestion'));
      button.type = 'button';
      if (suggestion.isRecommended) button.title = 'Recommended';
      if (typeof suggestion.uuid === 'string') button.dataset.suggestion = suggestion.uuid;
      button.addEventListener('click', () => handlers.suggest?.(card, suggestion, node, state));
      box.append(button);
    }
    node.append(box);
  }
  const reasons = card.overrideReasons ?? [];
  if (reasons.length) {
    const select = el('select', 'override-reason');
    select.setAttribute('aria-label', 'Override reason');
    select.append(el('option', '', 'Dismiss with a reason…'));
    select.firstChild.value = '';
    reasons.forEach((reason, index) => {
      const option = el('option', '', String(reason.display ?? reason.code ?? 'reason'));
      option.value = String(index);
      select.append(option);
    });
    const comment = el('input', 'override-comment');
    comment.type = 'text';
    comment.placeholder = 'Comment (optional)';
    comment.setAttribute('aria-label', 'Override comment');
    const dismiss = el('button', 'secondary dismiss', 'Dismiss');
    dismiss.type = 'button';
    dismiss.disabled = true;
    select.addEventListener('change', () => { dismiss.disabled = select.value === ''; });
    dismiss.addEventListener('click', () => {
      const reason = reasons[Number(select.value)];
      if (reason) handlers.override?.(card, reason, comment.value.trim(), node, state);
    });
    node.append(el('div', 'override', select, comment, dismiss));
  }
  node.append(state);
  return node;
}
