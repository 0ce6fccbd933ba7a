// The preview page: a small EHR. It reads the service's discovery document, builds each hook's prefetch
// from the service's own templates against the demo FHIR endpoint, and sends real CDS Hooks requests
// (patient-view, order-select while the order changes, order-sign on Sign) and feedback.

import { renderMarkdown } from './markdown.js';
import { renderCard } from './cards.js';

const USER = 'Practitioner/dexfree-demo-clinician';
const SELECT_DEBOUNCE_MS = 400;
const MAX_CALLS_SHOWN = 40;
const $ = (id) => document.getElementById(id);

const state = {
  catalog: null,
  services: {}, // hook → discovery entry
  patient: '',
  draft: null, // the draft MedicationRequest, or null once removed
  orderNumber: 0,
  orderSeq: 0,
  selectTimer: null,
  fhirCache: new Map(),
  pending: 0,
  shown: 0, // order answers shown so far (the browser tests wait on it)
};

function uuid() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function addDays(iso, days) {
  const d = new Date(`${iso}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

function busy(delta) {
  state.pending += delta;
  document.body.dataset.pending = String(state.pending);
}

async function readJson(response) {
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return text;
  }
}

// --- the call log ----------------------------------------------------------------------------------

function details(title, value, className) {
  const box = document.createElement('details');
  box.className = className;
  const summary = document.createElement('summary');
  summary.textContent = title;
  const pre = document.createElement('pre');
  pre.textContent = typeof value === 'string' ? value : JSON.stringify(value, null, 2);
  box.append(summary, pre);
  return box;
}

function logCall({ method, url, status, ms, request, response, prefetchQueries }) {
  const item = document.createElement('li');
  item.className = 'call';
  const ok = status >= 200 && status < 300;
  const head = document.createElement('span');
  head.className = ok ? 'status-ok' : 'status-error';
  const cards = Array.isArray(response?.cards) ? ` · ${response.cards.length} card(s)` : '';
  head.textContent = `${method} ${url} → ${status}${cards} · ${Math.round(ms)} ms`;
  item.append(head);
  if (prefetchQueries) item.append(details('Prefetch: template → demo FHIR query', prefetchQueries, 'prefetch'));
  if (request !== undefined) item.append(details('Request', request, 'request'));
  item.append(details('Response', response ?? '', 'response'));
  const list = $('calls');
  list.prepend(item);
  while (list.children.length > MAX_CALLS_SHOWN) list.lastChild.remove();
}

// --- prefetch from the discovery templates -------------------------------------------------------------

function renderTemplate(template, context) {
  const tokens = {
    'context.patientId': context.patientId,
    'context.userId': context.userId,
    userPractitionerId: context.userId.startsWith('Practitioner/') ? context.userId.slice(13) : undefined,
  };
  let unknown = false;
  const query = template.replace(/\{\{\s*([\w.]+)\s*\}\}/g, (_, name) => {
    if (tokens[name] === undefined) unknown = true;
    return encodeURIComponent(tokens[name] ?? '');
  });
  return unknown ? null : query;
}

async function buildPrefetch(service, context) {
  const prefetch = {};
  const queries = {};
  for (const [key, template] of Object.entries(service.prefetch ?? {})) {
    const query = renderTemplate(template, context);
    if (query === null) {
      queries[key] = `${template} (not rendered: unknown token; left out)`;
      continue;
    }
    queries[key] = `${template} → GET /demo/fhir/${query}`;
    if (!state.fhirCache.has(query)) {
      const response = await fetch(`/demo/fhir/${query}`, { headers: { Accept: 'application/fhir+json' } });
      const body = await readJson(response);
      state.fhirCache.set(query, response.ok ? body : undefined);
      if (!response.ok) queries[key] += ` (answered ${response.status}; left out)`;
    }
    const resource = state.fhirCache.get(query);
    if (resource !== undefined) prefetch[key] = resource;
  }
  return { prefetch, queries };
}

// --- hook calls ----------------------------------------------------------------------------------------

async function callHook(hook, extraContext) {
  const service = state.services[hook];
  if (!service) throw new Error(`the service offers no ${hook} hook`);
  const context = { userId: USER, patientId: state.patient, ...extraContext };
  busy(1);
  try {
    const { prefetch, queries } = await buildPrefetch(service, context);
    const body = { hook, hookInstance: uuid(), context, prefetch };
    const url = `/cds-services/${encodeURIComponent(service.id)}`;
    const started = performance.now();
    const response = await fetch(url, {
      method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(body),
    });
    const answer = await readJson(response);
    logCall({ method: 'POST', url, status: response.status, ms: performance.now() - started, request: body,
      response: answer, prefetchQueries: queries });
    return { service, status: response.status, body: answer };
  } finally {
    busy(-1);
  }
}

async function sendFeedback(service, entry, stateNode) {
  const url = `/cds-services/${encodeURIComponent(service.id)}/feedback`;
  const body = { feedback: [{ ...entry, outcomeTimestamp: new Date().toISOString() }] };
  busy(1);
  try {
    const started = performance.now();
    const response = await fetch(url, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
    });
    const answer = await readJson(response);
    logCall({ method: 'POST', url, status: response.status, ms: performance.now() - started, request: body,
      response: answer });
    stateNode.textContent += response.ok ? ' Feedback sent.' : ` Feedback refused (${response.status}).`;
    stateNode.dataset.feedback = response.ok ? 'sent' : 'refused';
  } catch (error) {
    stateNode.textContent += ` Feedback not sent: ${error.message}`;
    stateNode.dataset.feedback = 'failed';
  } finally {
    busy(-1);
  }
}

function problem(container, result) {
  const p = document.createElement('p');
  p.className = 'hint status-error';
  const issue = result.body?.issue?.[0]?.diagnostics;
  p.textContent = `The service answered ${result.status}${issue ? `: ${issue}` : ''}`;
  container.replaceChildren(p);
}

function showCards(container, result) {
  if (result.status !== 200 || !Array.isArray(result.body?.cards)) {
    problem(container, result);
    return;
  }
  const handlers = {
    suggest: (card, suggestion, node, stateNode) => applySuggestion(result.service, card, suggestion, node, stateNode),
    override: (card, reason, comment, node, stateNode) => {
      node.classList.add('dismissed');
      for (const control of node.querySelectorAll('button, select, input')) control.disabled = true;
      stateNode.textContent = `Dismissed: ${reason.display ?? reason.code}.`;
      const overrideReason = { reason };
      if (comment) overrideReason.userComment = comment;
      sendFeedback(result.service, { card: card.uuid, outcome: 'overridden', overrideReason }, stateNode);
    },
  };
  container.replaceChildren(...result.body.cards.map((card) => renderCard(card, handlers)));
}

// --- the draft order -------------------------------------------------------------------------------------

function draftFromForm() {
  const catalog = state.catalog;
  const product = catalog.products[Number($('product').value)];
  const routeIndex = $('route').value;
  const route = routeIndex === '' ? null : catalog.routes[Number(routeIndex)];
  const dose = Number.parseFloat($('dose').value);
  const start = $('start').value;
  const length = Math.max(1, Number.parseInt($('length').value, 10) || 1);
  const repeat = { frequency: 1, period: 1, periodUnit: 'd' };
  if (start) repeat.boundsPeriod = { start };
  if ($('length-kind').value === 'doses') repeat.count = length;
  else if (start) repeat.boundsPeriod.end = addDays(start, length - 1);
  const words = [Number.isFinite(dose) ? `${dose} mg` : 'dose not given', route ? route.display : 'no route',
    $('length-kind').value === 'doses' ? `${length} dose(s), one a day` : `once a day for ${length} day(s)`];
  const dosage = { text: words.join(', '), timing: { repeat } };
  if (route) dosage.route = { coding: [route], text: route.display };
  if (Number.isFinite(dose)) {
    dosage.doseAndRate = [{ doseQuantity: { value: dose, unit: 'mg', system: 'http://unitsofmeasure.org', code: 'mg' } }];
  }
  return {
    resourceType: 'MedicationRequest', id: `preview-order-${state.orderNumber}`, status: 'draft', intent: 'order',
    subject: { reference: `Patient/${state.patient}` }, authoredOn: catalog.today,
    medicationCodeableConcept: { coding: [product], text: product.display }, dosageInstruction: [dosage],
  };
}

function formFromDraft(draft) {
  const catalog = state.catalog;
  const coding = draft.medicationCodeableConcept?.coding?.[0];
  const product = catalog.products.findIndex((p) => p.code === coding?.code && p.system === coding?.system);
  if (product >= 0) $('product').value = String(product);
  const dosage = draft.dosageInstruction?.[0] ?? {};
  const dose = dosage.doseAndRate?.[0]?.doseQuantity?.value;
  if (dose !== undefined) $('dose').value = String(dose);
  const routeCode = dosage.route?.coding?.[0]?.code;
  const route = catalog.routes.findIndex((r) => r.code === routeCode);
  $('route').value = route >= 0 ? String(route) : '';
  const repeat = dosage.timing?.repeat ?? {};
  if (repeat.boundsPeriod?.start) $('start').value = repeat.boundsPeriod.start.slice(0, 10);
  if (repeat.count) {
    $('length-kind').value = 'doses';
    $('length').value = String(repeat.count);
  } else if (repeat.boundsPeriod?.start && repeat.boundsPeriod?.end) {
    const days = (Date.parse(repeat.boundsPeriod.end.slice(0, 10)) - Date.parse(repeat.boundsPeriod.start.slice(0, 10))) / 86400000;
    $('length-kind').value = 'days';
    $('length').value = String(Math.round(days) + 1);
  }
}

function showDraftState(note = '') {
  const controls = $('order-form').querySelectorAll('select, input');
  for (const control of controls) control.disabled = !state.patient || !state.draft;
  $('sign').disabled = !state.patient;
  const text = !state.patient ? 'Choose a demo patient first.'
    : state.draft ? `Draft MedicationRequest/${state.draft.id}: ${state.draft.dosageInstruction?.[0]?.text ?? ''}`
      : 'No draft order: it was removed. "New order" starts another.';
  $('draft-state').textContent = note ? `${text} ${note}` : text;
  $('draft-state').dataset.draft = state.draft ? state.draft.id : '';
}

function draftOrders() {
  return { resourceType: 'Bundle', type: 'collection', entry: state.draft ? [{ resource: state.draft }] : [] };
}

async function orderCall(hook) {
  const seq = ++state.orderSeq;
  const extra = { draftOrders: draftOrders() };
  if (hook === 'order-select') extra.selections = state.draft ? [`MedicationRequest/${state.draft.id}`] : [];
  try {
    const result = await callHook(hook, extra);
    if (seq !== state.orderSeq) return; // a newer call has been made: its answer is the one shown
    $('order-hook').textContent = `(${hook})`;
    showCards($('order-cards'), result);
    state.shown += 1;
    document.body.dataset.orderShown = `${hook}:${state.shown}`;
  } catch (error) {
    if (seq === state.orderSeq) problem($('order-cards'), { status: 'no answer', body: { issue: [{ diagnostics: error.message }] } });
  }
}

function orderChanged() {
  if (!state.patient || !state.draft) return;
  state.draft = draftFromForm();
  showDraftState();
  clearTimeout(state.selectTimer);
  state.selectTimer = setTimeout(() => orderCall('order-select'), SELECT_DEBOUNCE_MS);
}

function newOrder() {
  state.orderNumber += 1;
  state.draft = draftFromForm();
  showDraftState();
}

function applySuggestion(service, card, suggestion, node, stateNode) {
  const notes = [];
  for (const action of suggestion.actions ?? []) {
    const target = Array.isArray(action.resourceId) ? action.resourceId : [action.resourceId];
    if (action.type === 'delete' && state.draft && target.includes(`MedicationRequest/${state.draft.id}`)) {
      state.draft = null;
      notes.push('the draft order was removed');
    } else if ((action.type === 'update' || action.type === 'create') && action.resource?.resourceType === 'MedicationRequest') {
      state.draft = action.resource;
      formFromDraft(action.resource);
      notes.push(`the draft order was ${action.type === 'update' ? 'replaced' : 'created'} as suggested`);
    } else {
      notes.push(`action ${action.type} not applicable to this draft`);
    }
  }
  clearTimeout(state.selectTimer);
  for (const control of node.querySelectorAll('button, select, input')) control.disabled = true;
  stateNode.textContent = `Applied "${suggestion.label}": ${notes.join('; ')}.`;
  showDraftState();
  sendFeedback(service, { card: card.uuid, outcome: 'accepted', acceptedSuggestions: [{ id: suggestion.uuid }] }, stateNode);
}

// --- patients --------------------------------------------------------------------------------------------

async function choosePatient(id) {
  state.patient = id;
  state.fhirCache.clear();
  clearTimeout(state.selectTimer);
  state.orderSeq += 1;
  $('order-cards').replaceChildren();
  $('order-hook').textContent = '';
  $('patient-cards').replaceChildren();
  const patient = state.catalog.patients.find((p) => p.id === id);
  $('patient-shows').textContent = patient ? `What it shows: ${patient.shows}.` : '';
  if (!id) {
    state.draft = null;
    showDraftState();
    return;
  }
  newOrder();
  document.body.dataset.patientShown = '';
  let result;
  try {
    result = await callHook('patient-view', {});
  } catch (error) {
    result = { status: 'no answer', body: { issue: [{ diagnostics: error.message }] } };
  }
  if (state.patient === id) {
    showCards($('patient-cards'), result);
    document.body.dataset.patientShown = id;
  }
}

function fillSelect(select, items, label) {
  select.replaceChildren(...items.map((item, index) => {
    const option = document.createElement('option');
    option.value = String(index);
    option.textContent = label(item);
    return option;
  }));
}

async function init() {
  window.dexfreePreview = { renderMarkdown, renderCard };
  const catalogResponse = await fetch('/demo/patients');
  state.catalog = await catalogResponse.json();
  const discovery = await fetch('/cds-services');
  const services = await readJson(discovery);
  const mode = $('mode');
  if (!discovery.ok || !state.catalog.openService) {
    mode.classList.add('alert');
    mode.textContent = 'This service requires JWT authentication (CDS_JWT_ISSUERS is set). The preview sends no '
      + 'token, so its calls are refused: use it on a service in open mode (make run). '
      + `Discovery answered ${discovery.status}.`;
    if (!discovery.ok) return;
  } else {
    mode.textContent = `Demo day ${state.catalog.today} · service in open mode (no authentication) · `
      + 'demo patients only.';
  }
  for (const service of services.services ?? []) state.services[service.hook] = service;

  const select = $('patient');
  const placeholder = document.createElement('option');
  placeholder.value = '';
  placeholder.textContent = 'Choose a demo patient…';
  const groups = new Map();
  for (const patient of state.catalog.patients) {
    if (!groups.has(patient.group)) {
      const group = document.createElement('optgroup');
      group.label = patient.group;
      groups.set(patient.group, group);
    }
    const option = document.createElement('option');
    option.value = patient.id;
    option.textContent = patient.label;
    groups.get(patient.group).append(option);
  }
  select.replaceChildren(placeholder, ...groups.values());
  select.disabled = false;
  fillSelect($('product'), state.catalog.products, (p) => p.display);
  fillSelect($('route'), state.catalog.routes, (r) => r.display);
  const none = document.createElement('option');
  none.value = '';
  none.textContent = '(no route given)';
  $('route').append(none);
  $('start').value = state.catalog.today;

  select.addEventListener('change', () => choosePatient(select.value));
  $('order-form').addEventListener('submit', (event) => event.preventDefault());
  $('order-form').addEventListener('input', orderChanged);
  $('order-form').addEventListener('change', orderChanged);
  $('sign').addEventListener('click', () => {
    clearTimeout(state.selectTimer);
    orderCall('order-sign');
  });
  $('new-order').addEventListener('click', () => {
    if (!state.patient) return;
    newOrder();
    orderChanged();
  });
  showDraftState();
  document.body.dataset.ready = 'true';

  const wanted = new URLSearchParams(window.location.hash.slice(1)).get('patient');
  if (wanted && state.catalog.patients.some((p) => p.id === wanted)) {
    select.value = wanted;
    await choosePatient(wanted);
  }
}

init().catch((error) => {
  $('mode').classList.add('alert');
  $('mode').textContent = `The preview could not start: ${error.message}`;
});
