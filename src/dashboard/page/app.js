// The Flow Proxy dashboard in the browser: plain JavaScript, no dependencies, no other host.
// State comes from the server-sent event stream /dashboard/events (docs/dashboard.md); the route
// table is fetched a page at a time from /dashboard/routes, whose `stream` parameter tells the
// server which services this page shows, so it sends their rates each second.

const PAGE_SIZE = 50;
const SEARCH_DELAY_MS = 250;
const KEPT_ENTRIES = 100;
/** Replica addresses change without a new table version: the page shown is fetched again this often. */
const ROWS_REFRESH_MS = 5000;
const SPARK_WIDTH = 120;
const SPARK_HEIGHT = 24;
const SVG = 'http://www.w3.org/2000/svg';

const SOURCE_LABELS = { api: 'API', swarm: 'Swarm labels or listener', bulk: 'API (bulk)' };
const ADDRESS_MODE_LABELS = { vip: 'VIP', tasks: 'tasks', outbound: 'outbound host' };

const byId = (id) => document.getElementById(id);
const ui = {
  connection: byId('connection'),
  form: byId('search-form'),
  search: byId('search'),
  summary: byId('routes-summary'),
  routes: byId('routes-body'),
  previous: byId('previous-page'),
  next: byId('next-page'),
  position: byId('page-position'),
  trafficTotal: byId('traffic-total'),
  top: byId('top-services'),
  changes: byId('changes-body'),
  changesEmpty: byId('changes-empty'),
  problems: byId('problems-body'),
  problemsEmpty: byId('problems-empty'),
};

const view = { q: '', offset: 0, total: 0 };
const live = { stream: null, historySamples: 60, plane: null, connected: false };
/** service -> { requests: number[], errors: number[] }, for the rows shown and the busiest services. */
let series = new Map();
/** service -> the cells of its row that change every second. */
let rowCells = new Map();
let topServices = [];
let routesRequest = 0;

const number = new Intl.NumberFormat('en-US');

function rate(value) {
  return value >= 100 ? value.toFixed(0) : value.toFixed(1);
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className !== undefined) node.className = className;
  return node;
}

function timeCell(iso) {
  const cell = element('td');
  const time = element('time', new Date(iso).toLocaleTimeString('en-GB'));
  time.dateTime = iso;
  cell.append(time);
  return cell;
}

/** Sets text only when it differs, so a live region does not announce the same words again. */
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function listOr(values, fallback) {
  return values.length > 0 ? values.join(', ') : fallback;
}

// ---- sparklines: two polylines (requests, 5xx) on one scale, drawn from the series ----

function sparkline() {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', 'sparkline');
  svg.setAttribute('width', String(SPARK_WIDTH));
  svg.setAttribute('height', String(SPARK_HEIGHT));
  svg.setAttribute('viewBox', `0 0 ${SPARK_WIDTH} ${SPARK_HEIGHT}`);
  svg.setAttribute('role', 'img');
  const baseline = document.createElementNS(SVG, 'line');
  baseline.setAttribute('class', 'baseline');
  baseline.setAttribute('x1', '0');
  baseline.setAttribute('x2', String(SPARK_WIDTH));
  baseline.setAttribute('y1', String(SPARK_HEIGHT));
  baseline.setAttribute('y2', String(SPARK_HEIGHT));
  const requests = document.createElementNS(SVG, 'polyline');
  requests.setAttribute('class', 'requests');
  const errors = document.createElementNS(SVG, 'polyline');
  errors.setAttribute('class', 'errors');
  svg.append(baseline, requests, errors);
  return svg;
}

function points(values, peak) {
  const step = values.length > 1 ? SPARK_WIDTH / (values.length - 1) : 0;
  return values.map((value, i) => `${(i * step).toFixed(1)},${(SPARK_HEIGHT - (value / peak) * SPARK_HEIGHT).toFixed(1)}`).join(' ');
}

function drawSparkline(svg, service) {
  const data = series.get(service) ?? emptySeries();
  const peak = Math.max(...data.requests, ...data.errors);
  const scale = Math.max(peak, 1);
  svg.querySelector('.requests').setAttribute('points', points(data.requests, scale));
  svg.querySelector('.errors').setAttribute('points', points(data.errors, scale));
  svg.setAttribute('aria-label', `${service}, last minute: at most ${rate(peak)} requests per second, at most ${rate(Math.max(...data.errors))} 5xx answers per second`);
}

function emptySeries() {
  return { requests: new Array(live.historySamples).fill(0), errors: new Array(live.historySamples).fill(0) };
}

function seriesFrom(history) {
  return history === undefined ? emptySeries() : { requests: [...history.requests], errors: [...history.errors] };
}

function append(service, requests, errors) {
  const data = series.get(service) ?? emptySeries();
  data.requests.push(requests);
  data.errors.push(errors);
  data.requests.splice(0, Math.max(0, data.requests.length - live.historySamples));
  data.errors.splice(0, Math.max(0, data.errors.length - live.historySamples));
  series.set(service, data);
}

// ---- the route table, one page at a time ----

function routeRow(row) {
  const tr = element('tr');
  tr.dataset.service = row.service;
  const name = element('th', row.service);
  name.scope = 'row';
  const mode = element('td', ADDRESS_MODE_LABELS[row.addressMode] ?? row.addressMode);
  mode.append(element('br'), element('span', row.backend, 'muted'));
  const replicas =
    row.replicas === null
      ? element('td', 'not looked up yet', 'muted')
      : element('td', row.replicaCount === 0 ? 'none' : `${row.replicaCount}: ${row.replicas.join(', ')}${row.replicaCount > row.replicas.length ? ', …' : ''}`, row.replicaCount === 0 ? 'error' : undefined);
  const requests = element('td', rate(row.rate.requests), 'number requests-rate');
  const errors = element('td', rate(row.rate.errors), 'number errors-rate');
  const chart = element('td');
  const svg = sparkline();
  chart.append(svg);
  tr.append(
    name,
    element('td', listOr(row.paths, 'any path')),
    element('td', listOr(row.domains, 'any domain')),
    element('td', row.ports.join(', ')),
    element('td', SOURCE_LABELS[row.source] ?? row.source),
    mode,
    replicas,
    requests,
    errors,
    chart,
  );
  rowCells.set(row.service, { requests, errors, svg });
  drawSparkline(svg, row.service);
  return tr;
}

function renderRoutes(reply) {
  view.offset = reply.offset;
  view.total = reply.total;
  const keep = new Set(topServices.map((entry) => entry.service));
  series = new Map([...series].filter(([service]) => keep.has(service)));
  for (const row of reply.rows) series.set(row.service, seriesFrom(row.history));
  rowCells = new Map();
  ui.routes.replaceChildren(...reply.rows.map(routeRow));

  const matching = reply.q === '' ? '' : ` matching “${reply.q}”`;
  if (reply.total === 0) {
    setText(ui.summary, reply.q === '' ? 'No routes yet.' : `No service matches “${reply.q}” (${number.format(reply.services)} in the table).`);
  } else {
    const first = reply.offset + 1;
    const last = reply.offset + reply.rows.length;
    setText(ui.summary, `Services ${number.format(first)}–${number.format(last)} of ${number.format(reply.total)}${matching} (${number.format(reply.services)} in the table).`);
  }
  const pages = Math.max(1, Math.ceil(reply.total / reply.limit));
  const page = Math.floor(reply.offset / reply.limit) + 1;
  setText(ui.position, `Page ${number.format(page)} of ${number.format(pages)}`);
  const hadFocus = document.activeElement;
  ui.previous.disabled = page <= 1;
  ui.next.disabled = page >= pages;
  // A button that becomes disabled loses focus: keep the keyboard user on the pager.
  if (hadFocus === ui.next && ui.next.disabled && !ui.previous.disabled) ui.previous.focus();
  if (hadFocus === ui.previous && ui.previous.disabled && !ui.next.disabled) ui.next.focus();
}

async function loadRoutes() {
  const ticket = ++routesRequest;
  const params = new URLSearchParams({ offset: String(view.offset), limit: String(PAGE_SIZE), q: view.q });
  if (live.stream !== null) params.set('stream', live.stream);
  let reply;
  try {
    const response = await fetch(`/dashboard/routes?${params}`, { headers: { accept: 'application/json' } });
    if (!response.ok) throw new Error(`the proxy answered ${response.status}`);
    reply = await response.json();
  } catch (error) {
    if (ticket === routesRequest) setText(ui.summary, `The routes could not be loaded: ${error.message}.`);
    return;
  }
  if (ticket === routesRequest) renderRoutes(reply);
}

// ---- traffic ----

function renderTotal(total) {
  ui.trafficTotal.textContent = `All services: ${rate(total.requests)} requests/s, ${rate(total.errors)} 5xx answers/s.`;
}

function renderTop() {
  if (topServices.length === 0) {
    ui.top.replaceChildren(element('li', 'No traffic in the last second.', 'muted'));
    return;
  }
  ui.top.replaceChildren(
    ...topServices.map((entry) => {
      const item = element('li');
      item.dataset.service = entry.service;
      const svg = sparkline();
      item.append(element('span', entry.service, 'name'), element('span', `${rate(entry.requests)} requests/s, ${rate(entry.errors)} 5xx/s`, 'rate'), svg);
      drawSparkline(svg, entry.service);
      return item;
    }),
  );
}

function setTop(entries, appended) {
  for (const entry of entries) {
    if (entry.history !== undefined) series.set(entry.service, seriesFrom(entry.history));
    else if (!appended.has(entry.service)) append(entry.service, entry.requests, entry.errors);
  }
  topServices = entries;
  const keep = new Set([...rowCells.keys(), ...entries.map((entry) => entry.service)]);
  for (const service of series.keys()) if (!keep.has(service)) series.delete(service);
  renderTop();
}

function applyRates(event) {
  renderTotal(event.total);
  const rates = new Map(event.services.map((entry) => [entry.service, entry]));
  const appended = new Set();
  for (const [service, cells] of rowCells) {
    const current = rates.get(service) ?? { requests: 0, errors: 0 };
    append(service, current.requests, current.errors);
    appended.add(service);
    cells.requests.textContent = rate(current.requests);
    cells.errors.textContent = rate(current.errors);
    drawSparkline(cells.svg, service);
  }
  setTop(event.top, appended);
}

// ---- changes and problems: newest first, at most KEPT_ENTRIES rows ----

function changeRow(change) {
  const more = change.serviceCount - change.services.length;
  const services = `${change.services.join(', ')}${more > 0 ? ` and ${number.format(more)} more` : ''}`;
  return [
    timeCell(change.at),
    element('td', SOURCE_LABELS[change.source] ?? change.source),
    element('td', services || '—'),
    element('td', change.result, `result-${change.result}`),
    element('td', `${change.milliseconds} ms`, 'number'),
    element('td', change.message ?? ''),
  ];
}

function problemRow(problem) {
  const details = Object.entries(problem.details).map(([key, value]) => `${key}: ${value}`).join('; ');
  return [timeCell(problem.at), element('td', problem.level, `level-${problem.level}`), element('td', problem.message), element('td', details)];
}

function prepend(body, empty, entries, cells, replace) {
  if (replace) body.replaceChildren();
  for (const entry of entries) {
    const tr = element('tr');
    tr.append(...cells(entry));
    body.prepend(tr);
  }
  while (body.rows.length > KEPT_ENTRIES) body.lastElementChild.remove();
  empty.hidden = body.rows.length > 0;
  body.closest('table').hidden = body.rows.length === 0;
}

// ---- connection ----

function renderConnection() {
  const plane = live.plane;
  if (!live.connected || plane === null) return;
  const state = plane.ready ? `serving table version ${plane.version}` : 'not ready';
  const problem = plane.lastError === null ? '' : `; last error: ${plane.lastError}`;
  setText(ui.connection, `Live: ${plane.kind} data plane ${state}${problem}.`);
  ui.connection.classList.toggle('lost', plane.lastError !== null || !plane.ready);
}

function connect() {
  const source = new EventSource('/dashboard/events');
  source.addEventListener('hello', (event) => {
    const hello = JSON.parse(event.data);
    live.stream = hello.stream;
    live.historySamples = hello.historySamples;
    live.plane = hello.plane;
    live.connected = true;
    renderConnection();
    renderTotal(hello.total);
    prepend(ui.changes, ui.changesEmpty, hello.changes, changeRow, true);
    prepend(ui.problems, ui.problemsEmpty, hello.problems, problemRow, true);
    setTop(hello.top, new Set());
    void loadRoutes(); // also tells the server which services this page shows
  });
  source.addEventListener('rates', (event) => applyRates(JSON.parse(event.data)));
  source.addEventListener('table', () => void loadRoutes());
  source.addEventListener('plane', (event) => {
    live.plane = JSON.parse(event.data);
    renderConnection();
  });
  source.addEventListener('changes', (event) => prepend(ui.changes, ui.changesEmpty, JSON.parse(event.data), changeRow, false));
  source.addEventListener('problems', (event) => prepend(ui.problems, ui.problemsEmpty, JSON.parse(event.data), problemRow, false));
  source.addEventListener('error', () => {
    live.connected = false;
    live.stream = null;
    const closed = source.readyState === EventSource.CLOSED;
    ui.connection.textContent = closed ? 'Disconnected: reload the page to try again.' : 'Connection lost; reconnecting…';
    ui.connection.classList.add('lost');
  });
}

// ---- search and paging ----

let searchTimer;
function search() {
  clearTimeout(searchTimer);
  const q = ui.search.value.trim();
  if (q === view.q) return;
  view.q = q;
  view.offset = 0;
  void loadRoutes();
}

ui.search.addEventListener('input', () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(search, SEARCH_DELAY_MS);
});
ui.form.addEventListener('submit', (event) => {
  event.preventDefault();
  search();
});
ui.previous.addEventListener('click', () => {
  view.offset = Math.max(0, view.offset - PAGE_SIZE);
  void loadRoutes();
});
ui.next.addEventListener('click', () => {
  view.offset += PAGE_SIZE;
  void loadRoutes();
});

setInterval(() => {
  if (live.connected) void loadRoutes();
}, ROWS_REFRESH_MS);

renderTop();
prepend(ui.changes, ui.changesEmpty, [], changeRow, true);
prepend(ui.problems, ui.problemsEmpty, [], problemRow, true);
connect();
