// Drives the preview page in Debian's chromium (playwright-core) and prints what it saw as JSON.
//
//   node run.mjs --base http://127.0.0.1:PORT --out DIR [--chromium /usr/bin/chromium]
//
// The steps act as a clinician would (choose a patient, write an order, Sign, click a suggestion,
// dismiss with a reason); pytest (tests/browser/test_preview_browser.py) asserts on the JSON. A
// screenshot of every step is written to DIR. Card sentences are never compared: indicators, rule ids
// (the raw response's extension dexfree.rule) and the presence of suggestions and reasons are.

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

function options(argv) {
  const opts = { base: '', out: '', chromium: '/usr/bin/chromium' };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in opts)) throw new Error(`unknown option ${argv[i]}`);
    opts[key] = argv[i + 1];
  }
  if (!opts.base || !opts.out) throw new Error('--base and --out are required');
  return opts;
}

const opts = options(process.argv.slice(2));
mkdirSync(opts.out, { recursive: true });
const profile = mkdtempSync(path.join(tmpdir(), 'dexfree-chromium-'));
const result = { steps: {}, console: [], pageErrors: [], failedRequests: [], screenshots: [] };
const TIMEOUT = 15000;

const browser = await chromium.launchPersistentContext(profile, {
  executablePath: opts.chromium,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--no-first-run', '--disable-sync', '--disable-quic'],
  viewport: { width: 1280, height: 1000 },
});

let shot = 0;
async function screenshot(page, name) {
  shot += 1;
  const file = path.join(opts.out, `${String(shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  result.screenshots.push(file);
}

// The cards of a container as facts (never their sentences, except the summary for messages).
async function cards(page, selector) {
  return page.$$eval(`${selector} .card`, (nodes) => nodes.map((n) => ({
    indicator: n.dataset.indicator,
    rule: n.dataset.rule ?? null,
    uuid: n.dataset.uuid ?? null,
    summary: n.querySelector('.summary')?.textContent ?? '',
    suggestions: [...n.querySelectorAll('button.suggestion')].map((b) => b.textContent),
    overrideReasons: [...n.querySelectorAll('select.override-reason option')].filter((o) => o.value !== '').length,
    hasDetail: Boolean(n.querySelector('.detail')?.textContent),
    hasSource: Boolean(n.querySelector('.source')?.textContent),
    links: [...n.querySelectorAll('.links a')].map((a) => a.href),
  })));
}

// The raw response of the newest call, read from the page's own call log (opened as an integrator would).
async function lastResponse(page) {
  const call = page.locator('#calls li.call').first();
  await call.locator('details.response > summary').click();
  await call.locator('details.request > summary').click();
  const response = await call.locator('details.response > pre').textContent();
  const request = await call.locator('details.request > pre').textContent();
  return { response: JSON.parse(response), request: JSON.parse(request) };
}

async function choose(page, patientId) {
  await page.selectOption('#patient', patientId);
  await page.waitForFunction((id) => document.body.dataset.patientShown === id, patientId, { timeout: TIMEOUT });
}

async function writeOrder(page, { dose, route, length = '1' }) {
  await page.fill('#dose', String(dose));
  await page.selectOption('#route', { label: route });
  await page.selectOption('#length-kind', 'days');
  await page.fill('#length', length);
}

async function orderAnswer(page, hook, before) {
  await page.waitForFunction(([h, n]) => {
    const shown = document.body.dataset.orderShown ?? '';
    return shown.startsWith(`${h}:`) && Number(shown.split(':')[1]) > n && document.body.dataset.pending === '0';
  }, [hook, before], { timeout: TIMEOUT });
}

const shownCount = (page) => page.evaluate(() => Number((document.body.dataset.orderShown ?? ':0').split(':')[1]));

async function sign(page) {
  const before = await shownCount(page);
  await page.click('#sign');
  await orderAnswer(page, 'order-sign', before);
}

const page = await browser.newPage();
page.setDefaultTimeout(TIMEOUT);
page.on('console', (message) => {
  if (message.type() === 'error' || message.type() === 'warning') {
    result.console.push({ type: message.type(), text: message.text() });
  }
});
page.on('pageerror', (error) => result.pageErrors.push(String(error)));
page.on('requestfailed', (request) => result.failedRequests.push(request.url()));

try {
  const response = await page.goto(opts.base + '/', { waitUntil: 'load' });
  result.steps.open = {
    status: response.status(),
    csp: response.headers()['content-security-policy'] ?? null,
  };
  await page.waitForFunction(() => document.body.dataset.ready === 'true');
  result.steps.open.patients = await page.$$eval('#patient option', (o) => o.filter((x) => x.value).length);
  result.steps.open.today = await page.inputValue('#start');
  await screenshot(page, 'open');

  // Arm B, cycle 3: dexamethasone 40 mg by mouth today, as order-select while writing, then Sign.
  await choose(page, 'dexfree-demo-b-icaria-c3');
  const beforeSelect = await shownCount(page);
  await writeOrder(page, { dose: 40, route: 'Oral route' });
  await orderAnswer(page, 'order-select', beforeSelect);
  result.steps.armBSelect = { cards: await cards(page, '#order-cards') };
  await sign(page);
  const raw = await lastResponse(page);
  result.steps.armBSign = {
    patientCards: await cards(page, '#patient-cards'),
    cards: await cards(page, '#order-cards'),
    rawRules: (raw.response.cards ?? []).map((c) => c.extension?.dexfree?.rule ?? null),
    requestHook: raw.request.hook,
    prefetchKeys: Object.keys(raw.request.prefetch ?? {}),
    draftIds: (raw.request.context.draftOrders.entry ?? []).map((e) => e.resource.id),
  };
  await screenshot(page, 'arm-b-cycle-3-sign-warning');

  // The suggestion removes the draft; signing again shows no warning.
  const warning = page.locator('#order-cards .card[data-indicator="warning"]').first();
  await warning.locator('button.suggestion').first().click();
  await page.waitForFunction(() => document.getElementById('draft-state').dataset.draft === '');
  await warning.locator('.feedback-state[data-feedback]').waitFor();
  result.steps.suggestion = {
    draftAfter: await page.$eval('#draft-state', (n) => n.dataset.draft),
    feedback: await warning.locator('.feedback-state').getAttribute('data-feedback'),
  };
  await screenshot(page, 'suggestion-removed-order');
  await sign(page);
  const afterRaw = await lastResponse(page);
  result.steps.signAgain = {
    cards: await cards(page, '#order-cards'),
    draftEntries: (afterRaw.request.context.draftOrders.entry ?? []).length,
  };
  await screenshot(page, 'signed-again-no-warning');

  // A new order, signed, dismissed with a reason: the feedback goes to the service.
  await page.click('#new-order');
  await writeOrder(page, { dose: 40, route: 'Oral route' });
  await sign(page);
  const toDismiss = page.locator('#order-cards .card[data-indicator="warning"]').first();
  const dismissedUuid = await toDismiss.getAttribute('data-uuid');
  await toDismiss.locator('select.override-reason').selectOption({ index: 1 });
  const reasonLabel = await toDismiss.locator('select.override-reason option:checked').textContent();
  await toDismiss.locator('input.override-comment').fill('browser test override');
  await toDismiss.locator('button.dismiss').click();
  await toDismiss.locator('.feedback-state[data-feedback]').waitFor();
  result.steps.dismiss = {
    uuid: dismissedUuid,
    reason: reasonLabel,
    feedback: await toDismiss.locator('.feedback-state').getAttribute('data-feedback'),
    dismissed: await toDismiss.evaluate((n) => n.classList.contains('dismissed')),
  };
  await screenshot(page, 'dismissed-with-reason');

  // Arm A, same order: no warning.
  await choose(page, 'dexfree-demo-a-icaria-c3');
  await writeOrder(page, { dose: 40, route: 'Oral route' });
  await sign(page);
  const armARaw = await lastResponse(page);
  result.steps.armA = {
    cards: await cards(page, '#order-cards'),
    rawRules: (armARaw.response.cards ?? []).map((c) => c.extension?.dexfree?.rule ?? null),
    patientCards: await cards(page, '#patient-cards'),
  };
  await screenshot(page, 'arm-a-no-warning');

  // The eligibility candidate's patient-view.
  await choose(page, 'dexfree-demo-candidate');
  await page.waitForFunction(() => document.body.dataset.pending === '0');
  result.steps.candidate = { cards: await cards(page, '#patient-cards') };
  await screenshot(page, 'candidate-eligibility');

  // Card text with Markdown and markup, through the page's own card renderer.
  result.steps.renderer = await page.evaluate(() => {
    const crafted = {
      uuid: 'crafted', indicator: 'warning', summary: '<b>summary</b> <script>window.__pwned = 1</script>',
      detail: '**Bold** and *soft* text <script>window.__pwned = 2</script>\n\n'
        + '- item <img src=x onerror="window.__pwned = 3">\n- [a link](https://example.org/x) '
        + '[bad link](javascript:window.__pwned=4)\n\n| Criterion | Status |\n|---|---|\n| I1 \\| adult | <i>met</i> |',
      source: { label: 'Crafted <em>source</em>', url: 'javascript:window.__pwned=5' },
      links: [{ label: 'evil', url: 'javascript:window.__pwned=6', type: 'absolute' }],
      suggestions: [{ uuid: 's1', label: '<u>apply</u>', actions: [] }],
    };
    const node = window.dexfreePreview.renderCard(crafted, {});
    const box = document.createElement('div');
    box.id = 'renderer-test';
    box.className = 'cards';
    box.append(node);
    document.querySelector('main').prepend(box);
    const anchors = [...node.querySelectorAll('a')].map((a) => a.getAttribute('href'));
    return {
      elements: [...new Set([...node.querySelectorAll('*')].map((n) => n.tagName.toLowerCase()))].sort(),
      scripts: node.querySelectorAll('script, img, b, i, u, em.source').length,
      bold: node.querySelector('.detail strong')?.textContent ?? null,
      summaryText: node.querySelector('.summary').textContent,
      detailText: node.querySelector('.detail').textContent,
      tableCells: [...node.querySelectorAll('.detail td')].map((td) => td.textContent),
      listItems: node.querySelectorAll('.detail li').length,
      anchors,
      pwned: window.__pwned ?? null,
    };
  });
  await screenshot(page, 'renderer-crafted-card');
} catch (error) {
  result.error = String(error?.stack ?? error);
  try {
    await screenshot(page, 'failure');
  } catch {
    // the page may be gone; the error says why
  }
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}

process.stdout.write(JSON.stringify(result));
