/**
 * The dashboard in Debian's real headless Chromium, against a real proxy on each data plane with
 * API credentials set: the page needs them; a route added through the API appears; traffic sent
 * through the proxy shows as request and 5xx rates with sparklines; the change and a warning the
 * control plane logged are listed; 1,200 routes are searched and paged on the server, by
 * keyboard. The page asks nothing of any other host, logs no error, and axe-core finds no
 * serious or critical accessibility violation.
 */
import dgram from 'node:dgram';
import http from 'node:http';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { PlaneKind } from '../../src/planes/plane.js';
import { startBackend } from '../support/backends.js';
import type { Backend } from '../support/backends.js';
import { request } from '../support/http-client.js';
import { startTestProxy } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';
import { launchChromium } from './chromium.js';

const USER = 'ops';
const PASS = 'dashboard pass:1';
const BASIC = `Basic ${Buffer.from(`${USER}:${PASS}`).toString('base64')}`;
const AXE = path.resolve('node_modules/axe-core/axe.min.js');
const SCREENSHOT = path.resolve('docs/images/dashboard.png');
const DEADLINE_MS = 20_000;

let browser: Browser;
let backend: Backend;

beforeAll(async () => {
  browser = await launchChromium();
  backend = await startBackend('dashboard-backend', {
    handler: (req, res) => {
      const failing = req.url?.includes('/fail') === true;
      res.writeHead(failing ? 500 : 200, { 'content-type': 'text/plain' }).end(failing ? 'failing\n' : 'ok\n');
    },
  });
}, 900_000); // installing Chromium with apt, when missing, takes minutes

afterAll(async () => {
  await browser?.close();
  await backend?.close();
});

/** A loopback UDP port nobody listens on: every lookup there fails at once with ECONNREFUSED. */
async function deadDnsServer(): Promise<string> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(resolve));
  return `127.0.0.1:${port}`;
}

async function startProxy(plane: PlaneKind): Promise<TestProxy> {
  // Backends are addressed by IP (outboundHostname); names go to a DNS server that cannot be
  // reached, so a service named by host logs a warning the dashboard must show.
  return startTestProxy({ plane, dnsServer: await deadDnsServer(), env: { API_USER: USER, API_PASS: PASS } });
}

async function call(proxy: TestProxy, endpoint: string, init: RequestInit = {}): Promise<{ status: number; text: string }> {
  const response = await fetch(`${proxy.apiUrl}/v1/docker-flow-proxy/${endpoint}`, { ...init, headers: { authorization: BASIC, ...init.headers } });
  return { status: response.status, text: await response.text() };
}

async function reconfigure(proxy: TestProxy, params: Record<string, string>): Promise<void> {
  const reply = await call(proxy, `reconfigure?${new URLSearchParams(params).toString()}`);
  expect(reply.status, reply.text).toBe(200);
}

/** A dashboard tab that records every request it makes and every error it reports. */
interface Tab {
  readonly context: BrowserContext;
  readonly page: Page;
  readonly requests: string[];
  readonly errors: string[];
}

async function openDashboard(proxy: TestProxy): Promise<Tab> {
  const context = await browser.newContext({ httpCredentials: { username: USER, password: PASS }, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const tab: Tab = { context, page, requests: [], errors: [] };
  page.on('request', (sent) => tab.requests.push(sent.url()));
  page.on('console', (message) => {
    if (message.type() === 'error') tab.errors.push(message.text());
  });
  page.on('pageerror', (error) => tab.errors.push(error.message));
  const response = await page.goto(`${proxy.apiUrl}/`);
  expect(response?.status()).toBe(200);
  expect(response?.headers()['content-security-policy']).toContain("default-src 'self'");
  await page.locator('#connection', { hasText: 'Live:' }).waitFor({ timeout: DEADLINE_MS });
  return tab;
}

/** Only the API's own origin was asked for anything, and the page reported no error. */
function expectSelfContainedAndQuiet(tab: Tab, proxy: TestProxy): void {
  const origin = new URL(proxy.apiUrl).origin;
  expect(tab.requests.length).toBeGreaterThanOrEqual(5); // page, script, style, icon, events, routes
  expect(tab.requests.filter((url) => new URL(url).origin !== origin)).toEqual([]);
  expect(tab.errors).toEqual([]);
}

interface Violation {
  readonly id: string;
  readonly impact: string | null;
  readonly help: string;
  readonly targets: string[];
}

/**
 * axe-core's serious and critical findings. Its source is evaluated through the DevTools protocol
 * (as page.addScriptTag would inline it, which the page's own CSP rightly refuses).
 */
async function seriousViolations(page: Page): Promise<Violation[]> {
  await page.evaluate(await readFile(AXE, 'utf8'));
  const violations = await page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run(): Promise<{ violations: { id: string; impact: string | null; help: string; nodes: { target: unknown[] }[] }[] }> } }).axe;
    const result = await axe.run();
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map((n) => String(n.target[0])) }));
  });
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

/**
 * Requests through the proxy until stopped, four at a time, one in four answered 500; paced (a
 * few hundred a second, rising and falling) so the machine stays free for the browser.
 */
function startLoad(baseUrl: string): { stop(): Promise<number> } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  let running = true;
  let sent = 0;
  const started = Date.now();
  const loop = (async () => {
    while (running) {
      await Promise.all(['/demo/a', '/demo/b', '/demo/c', '/demo/fail'].map((p) => request(baseUrl, p, { agent }).catch(() => undefined)));
      sent += 4;
      const pause = 15 + 12 * Math.sin((Date.now() - started) / 1500);
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      agent.destroy();
      return sent;
    },
  };
}

/** Presses Tab until the element with `id` has the focus; returns how many presses it took. */
async function tabTo(page: Page, id: string, most = 10): Promise<number> {
  for (let presses = 1; presses <= most; presses++) {
    await page.keyboard.press('Tab');
    if ((await page.evaluate(() => document.activeElement?.id)) === id) return presses;
  }
  throw new Error(`#${id} did not get the focus within ${most} presses of Tab`);
}

const text = async (page: Page, selector: string) => ((await page.locator(selector).first().textContent()) ?? '').trim();

describe.each<PlaneKind>(['builtin', 'haproxy'])('%s plane', (plane) => {
  test('every dashboard URL needs the API credentials', async () => {
    const proxy = await startProxy(plane);
    try {
      const paths = ['/', '/dashboard/app.js', '/dashboard/app.css', '/dashboard/favicon.svg', '/dashboard/routes', '/dashboard/events'];
      for (const url of paths) {
        const missing = await fetch(`${proxy.apiUrl}${url}`);
        expect(missing.status, url).toBe(401);
        expect(missing.headers.get('www-authenticate'), url).toContain('Basic');
        const wrong = await fetch(`${proxy.apiUrl}${url}`, { headers: { authorization: `Basic ${Buffer.from(`${USER}:nope`).toString('base64')}` } });
        expect(wrong.status, url).toBe(401);
      }
      const page = await fetch(`${proxy.apiUrl}/`, { headers: { authorization: BASIC } });
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toContain('text/html');
      expect(await page.text()).toContain('<script type="module" src="/dashboard/app.js"></script>');
      const routes = await fetch(`${proxy.apiUrl}/dashboard/routes?limit=10`, { headers: { authorization: BASIC } });
      expect(await routes.json()).toMatchObject({ total: 0, offset: 0, limit: 10, rows: [] });
      // The event stream starts with the whole state.
      const events = await fetch(`${proxy.apiUrl}/dashboard/events`, { headers: { authorization: BASIC } });
      expect(events.headers.get('content-type')).toContain('text/event-stream');
      const reader = events.body?.getReader();
      let received = '';
      while (!received.includes('event: hello') && reader !== undefined) {
        const chunk = await reader.read();
        if (chunk.done) break;
        received += Buffer.from(chunk.value).toString('utf8');
      }
      await reader?.cancel();
      expect(received).toMatch(/event: hello\ndata: \{"stream":"[0-9a-f-]{36}","version":0,/);
    } finally {
      await proxy.stop();
    }
  });

  test('a new route, its traffic, the change and a logged warning appear live', { timeout: 90_000 }, async () => {
    const proxy = await startProxy(plane);
    let tab: Tab | undefined;
    let load: { stop(): Promise<number> } | undefined;
    try {
      tab = await openDashboard(proxy);
      const { page } = tab;
      await page.locator('#routes-summary', { hasText: 'No routes yet.' }).waitFor({ timeout: DEADLINE_MS });

      await reconfigure(proxy, { serviceName: 'dash-demo', servicePath: '/demo', port: String(backend.port), outboundHostname: '127.0.0.1' });
      const row = page.locator('#routes-body tr[data-service="dash-demo"]');
      await row.waitFor({ timeout: DEADLINE_MS });
      expect(await row.locator('th').textContent()).toBe('dash-demo');
      expect(await row.textContent()).toContain('/demo');
      expect(await row.textContent()).toContain('API');
      // Replicas in rotation: the address book's answer, picked up by the page's refresh.
      await row.locator('td', { hasText: '1: 127.0.0.1' }).waitFor({ timeout: DEADLINE_MS });
      await page.locator('#changes-body tr', { hasText: 'dash-demo' }).filter({ hasText: 'changed' }).waitFor({ timeout: DEADLINE_MS });
      expect(await text(page, '#changes-body tr')).toContain('API');

      load = startLoad(proxy.httpUrl);
      await page.waitForFunction(
        () => {
          const cells = document.querySelector('tr[data-service="dash-demo"]');
          const rate = (selector: string) => Number.parseFloat(cells?.querySelector(selector)?.textContent ?? '0');
          return rate('.requests-rate') > 0 && rate('.errors-rate') > 0;
        },
        undefined,
        { timeout: DEADLINE_MS },
      );
      // The sparkline has drawn a few seconds of traffic (points above its baseline); a longer
      // stretch for the screenshot.
      await page.waitForFunction(
        (seconds) => {
          const points = document.querySelector('tr[data-service="dash-demo"] polyline.requests')?.getAttribute('points') ?? '';
          return points.split(' ').filter((point) => Number(point.split(',')[1]) < 24).length >= seconds;
        },
        plane === 'builtin' ? 12 : 3,
        { timeout: DEADLINE_MS + 12_000 },
      );
      await page.locator('#top-services li[data-service="dash-demo"]').waitFor({ timeout: DEADLINE_MS });

      await reconfigure(proxy, { serviceName: 'dash-unresolvable', servicePath: '/nowhere', port: '80' });
      const warning = page.locator('#problems-body tr', { hasText: 'address lookup failed' }).filter({ hasText: 'dash-unresolvable' });
      await warning.first().waitFor({ timeout: DEADLINE_MS });
      expect(await warning.first().textContent()).toContain('warn');

      if (plane === 'builtin') {
        await mkdir(path.dirname(SCREENSHOT), { recursive: true });
        await page.screenshot({ path: SCREENSHOT, fullPage: true });
      }
      expect(await load.stop()).toBeGreaterThan(0);
      load = undefined;
      expect(await seriousViolations(page)).toEqual([]);
      expectSelfContainedAndQuiet(tab, proxy);
    } finally {
      await load?.stop();
      await tab?.context.close();
      await proxy.stop();
    }
  });

  test('1,200 routes: searched and paged on the server, by keyboard', { timeout: 90_000 }, async () => {
    const proxy = await startProxy(plane);
    let tab: Tab | undefined;
    try {
      const name = (i: number) => `bulk-${String(i).padStart(4, '0')}`;
      const services = Array.from({ length: 1200 }, (_, i) => ({ serviceName: name(i + 1), servicePath: `/${name(i + 1)}`, port: String(backend.port), outboundHostname: '127.0.0.1' }));
      const bulk = await call(proxy, 'reconfigure', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ services }) });
      expect(bulk.status, bulk.text).toBe(200);

      tab = await openDashboard(proxy);
      const { page } = tab;
      const summary = (expected: string) => page.locator('#routes-summary', { hasText: expected }).waitFor({ timeout: DEADLINE_MS });
      await summary('Services 1–50 of 1,200 (1,200 in the table).');
      expect(await page.locator('#routes-body tr').count()).toBe(50);
      expect(await text(page, '#page-position')).toBe('Page 1 of 24');
      expect(await text(page, '#routes-body th')).toBe('bulk-0001');
      expect(await page.locator('#previous-page').isDisabled()).toBe(true);

      // The search box is the first stop of the tab order.
      expect(await tabTo(page, 'search')).toBe(1);
      await page.keyboard.type('bulk-00');
      await summary('Services 1–50 of 99 matching “bulk-00”');
      expect(await text(page, '#page-position')).toBe('Page 1 of 2');

      await tabTo(page, 'next-page');
      await page.keyboard.press('Enter');
      await summary('Services 51–99 of 99 matching “bulk-00”');
      expect(await page.locator('#routes-body tr').count()).toBe(49);
      expect(await text(page, '#routes-body th')).toBe('bulk-0051');
      expect(await text(page, '#page-position')).toBe('Page 2 of 2');
      // The next-page button is disabled on the last page: the focus moved to the other one.
      expect(await page.evaluate(() => document.activeElement?.id)).toBe('previous-page');
      await page.keyboard.press('Enter');
      await summary('Services 1–50 of 99 matching “bulk-00”');

      await page.locator('#search').fill('bulk-0042');
      await summary('Services 1–1 of 1 matching “bulk-0042”');
      expect(await page.locator('#routes-body tr').count()).toBe(1);
      expect(await text(page, '#routes-body th')).toBe('bulk-0042');
      // By path, submitted with Enter.
      await page.locator('#search').fill('/bulk-1199');
      await page.keyboard.press('Enter');
      await summary('Services 1–1 of 1 matching “/bulk-1199”');
      expect(await text(page, '#routes-body th')).toBe('bulk-1199');

      expect(await seriousViolations(page)).toEqual([]);
      expectSelfContainedAndQuiet(tab, proxy);
    } finally {
      await tab?.context.close();
      await proxy.stop();
    }
  });
});
