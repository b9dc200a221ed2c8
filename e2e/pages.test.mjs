// Browser tests of the pages the kavling binary serves: the live siteplan and the admin console.
// playwright-core drives Debian's chromium (no downloaded browser). The server is started by
// .ci/run (or by hand) and described by environment variables:
//   KAVLING_URL             base URL, e.g. http://127.0.0.1:18080
//   KAVLING_ADMIN_EMAIL     an admin's email (the demo seed prints one)
//   KAVLING_ADMIN_PASSWORD  its password
//   CHROMIUM_PATH           optional, default /usr/bin/chromium
//   KAVLING_ARTIFACTS       optional screenshot directory, default ../tests-artifacts
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const BASE = (process.env.KAVLING_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const EMAIL = process.env.KAVLING_ADMIN_EMAIL;
const PASSWORD = process.env.KAVLING_ADMIN_PASSWORD;
const ARTIFACTS = process.env.KAVLING_ARTIFACTS || path.join(here, '..', 'tests-artifacts');
const FIXTURES = path.join(here, '..', 'fixtures', 'siteplans');
const COLORS = { AVAILABLE: '#22c55e', BOOKED: '#eab308', SOLD: '#ef4444', MAINTENANCE: '#9ca3af' };

let browser;
let token;

async function apiCall(method, p, body) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`${BASE}/api/v1${p}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const json = text ? JSON.parse(text) : null;
  assert.ok(res.ok, `${method} ${p}: HTTP ${res.status} ${text}`);
  return json;
}

/** A page that fails the test on any script error or CSP violation. */
async function newPage(viewport = { width: 1366, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
  });
  return { context, page, problems };
}

/** The fill the browser actually renders for a unit's element, as #rrggbb. */
async function renderedFill(page, unitId) {
  return page.evaluate((id) => {
    const el = document.querySelector(`[data-unit-id="${id}"]`);
    if (!el) return null;
    const shape = el.matches('path, rect, circle, ellipse, polygon, polyline')
      ? el : el.querySelector('path, rect, circle, ellipse, polygon, polyline') || el;
    const m = /rgb\((\d+), (\d+), (\d+)\)/.exec(getComputedStyle(shape).fill);
    return m ? `#${m.slice(1).map((n) => Number(n).toString(16).padStart(2, '0')).join('')}` : getComputedStyle(shape).fill;
  }, unitId);
}

async function legendCount(page, status) {
  return Number(await page.locator(`#kv-legend li[data-status="${status}"] .count`).textContent());
}

function shot(page, name) {
  return page.screenshot({ path: path.join(ARTIFACTS, name), fullPage: true });
}

before(async () => {
  assert.ok(EMAIL && PASSWORD, 'set KAVLING_ADMIN_EMAIL and KAVLING_ADMIN_PASSWORD');
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
  token = (await apiCall('POST', '/auth/login', { email: EMAIL, password: PASSWORD })).token;
});

after(async () => {
  if (browser) await browser.close();
});

describe('live siteplan page', () => {
  test('colours units, recolours a change within 1 s, resyncs on a seq gap, resumes with since after a drop', async () => {
    const projects = await apiCall('GET', '/projects');
    const project = projects.data.find((p) => p.siteplanVersion > 0);
    assert.ok(project, 'the demo project with a siteplan exists');
    const [availability, geometry] = await Promise.all([
      apiCall('GET', `/projects/${project.id}/availability`),
      apiCall('GET', `/projects/${project.id}/siteplan/geometry`),
    ]);
    const drawn = new Set(geometry.units.map((g) => g.unitId));
    const sold = availability.units.find((u) => u.status === 'SOLD' && drawn.has(u.unitId));
    const free = availability.units.find((u) => u.status === 'AVAILABLE' && drawn.has(u.unitId));
    assert.ok(sold && free, 'the demo has a drawn SOLD and a drawn AVAILABLE unit');

    const { context, page, problems } = await newPage();
    // The page's WebSocket goes through a test-controlled relay, so the test can drop frames
    // and connections and read what the page sends.
    const relay = { pages: [], sent: [], dropNextUnit: false, refuse: false };
    await page.routeWebSocket(/\/ws$/, (ws) => {
      if (relay.refuse) {
        ws.close({ code: 1013, reason: 'test: refused' });
        return;
      }
      const server = ws.connectToServer();
      relay.pages.push(ws);
      ws.onMessage((m) => {
        relay.sent.push(JSON.parse(m));
        server.send(m);
      });
      server.onMessage((m) => {
        if (relay.dropNextUnit && JSON.parse(m).type === 'unit') {
          relay.dropNextUnit = false;
          return;
        }
        ws.send(m);
      });
      ws.onClose(() => server.close());
      server.onClose(() => ws.close());
    });
    await page.goto(`${BASE}/projects/${project.id}`);
    await page.waitForSelector('body[data-live="true"]', { state: 'attached', timeout: 10000 });
    assert.deepEqual(relay.sent[0], { op: 'subscribe', channel: `project:${project.id}`, since: availability.seq });
    assert.equal(await page.locator('#kv-title').textContent(), project.name);
    assert.equal(await renderedFill(page, sold.unitId), COLORS.SOLD);
    assert.equal(await renderedFill(page, free.unitId), COLORS.AVAILABLE);
    const counts = Object.fromEntries(await Promise.all(Object.keys(COLORS)
      .map(async (s) => [s, await legendCount(page, s)])));
    for (const s of Object.keys(COLORS)) {
      assert.equal(counts[s], availability.units.filter((u) => u.status === s).length, `legend count of ${s}`);
    }
    await shot(page, 'live-initial.png');

    // Hovering a unit shows its block, type and price, formatted the Indonesian way.
    const unit = await apiCall('GET', `/units/${free.unitId}`);
    await page.hover(`[data-unit-id="${free.unitId}"]`);
    const tip = page.locator('#kv-tooltip');
    await tip.waitFor({ state: 'visible', timeout: 2000 });
    const tipText = await tip.textContent();
    assert.ok(tipText.includes(`Blok ${unit.blockNumber}`), tipText);
    assert.ok(tipText.includes(unit.type), tipText);
    const rupiah = `Rp ${String(unit.price).replace(/\B(?=(\d{3})+(?!\d))/g, '.')}`;
    assert.ok(tipText.includes(rupiah), `${tipText} lacks ${rupiah}`);
    await shot(page, 'live-hover.png');

    // A status change through the API reaches the page and recolours the unit within 1 s.
    const started = Date.now();
    await apiCall('PATCH', `/units/${free.unitId}`, { status: 'SOLD', expectedStatus: 'AVAILABLE' });
    await page.waitForFunction(
      ({ id, rgb }) => {
        const el = document.querySelector(`[data-unit-id="${id}"]`);
        return el && el.getAttribute('data-status') === 'SOLD'
          && getComputedStyle(el.querySelector('rect, path, polygon') || el).fill === rgb;
      },
      { id: free.unitId, rgb: 'rgb(239, 68, 68)' },
      { timeout: Math.max(1, 1000 - (Date.now() - started)), polling: 20 },
    );
    const elapsed = Date.now() - started;
    assert.ok(elapsed <= 1000, `recoloured after ${elapsed} ms`);
    assert.equal(await renderedFill(page, free.unitId), COLORS.SOLD);
    assert.equal(await legendCount(page, 'SOLD'), counts.SOLD + 1);
    assert.equal(await legendCount(page, 'AVAILABLE'), counts.AVAILABLE - 1);
    console.log(`# status change to recolour: ${elapsed} ms`);

    const statusOf = (id) => page.evaluate((u) => document.querySelector(`[data-unit-id="${u}"]`).getAttribute('data-status'), id);
    const waitStatus = (id, status, timeout = 5000) => page.waitForFunction(
      ([u, st]) => document.querySelector(`[data-unit-id="${u}"]`).getAttribute('data-status') === st,
      [id, status], { timeout },
    );
    const seqOf = async () => Number(await page.evaluate(() => document.body.dataset.seq));

    // A lost frame shows as a seq gap on the next one: the page subscribes again from its seq.
    const beforeGap = await seqOf();
    relay.dropNextUnit = true;
    await apiCall('PATCH', `/units/${free.unitId}`, { status: 'BOOKED', expectedStatus: 'SOLD' });
    await apiCall('PATCH', `/units/${sold.unitId}`, { status: 'MAINTENANCE', expectedStatus: 'SOLD' });
    await waitStatus(sold.unitId, 'MAINTENANCE');
    await waitStatus(free.unitId, 'BOOKED');
    assert.equal(await seqOf(), beforeGap + 2);
    assert.deepEqual(relay.sent.at(-1), { op: 'subscribe', channel: `project:${project.id}`, since: beforeGap });

    // After a dropped connection the page reconnects with backoff, resumes with `since` and
    // catches up on what it missed while away.
    const beforeDrop = await seqOf();
    relay.refuse = true;
    relay.pages.at(-1).close({ code: 1012, reason: 'test: server restart' });
    await page.waitForSelector('body[data-live="false"]', { state: 'attached', timeout: 5000 });
    await apiCall('PATCH', `/units/${free.unitId}`, { status: 'MAINTENANCE', expectedStatus: 'BOOKED' });
    await apiCall('PATCH', `/units/${sold.unitId}`, { status: 'SOLD', expectedStatus: 'MAINTENANCE' });
    await new Promise((r) => setTimeout(r, 1200)); // a refused reconnect or two (backoff)
    assert.equal(await statusOf(free.unitId), 'BOOKED');
    relay.refuse = false;
    await waitStatus(free.unitId, 'MAINTENANCE', 20000);
    await waitStatus(sold.unitId, 'SOLD');
    assert.deepEqual(relay.sent.at(-1), { op: 'subscribe', channel: `project:${project.id}`, since: beforeDrop });
    assert.equal(await renderedFill(page, free.unitId), COLORS.MAINTENANCE);
    await page.waitForSelector('body[data-live="true"]', { state: 'attached' });
    await apiCall('PATCH', `/units/${free.unitId}`, { status: 'AVAILABLE' });
    await waitStatus(free.unitId, 'AVAILABLE');
    await shot(page, 'live-after-change.png');

    // Phone-sized layout: tapping a unit shows its details.
    const phone = await newPage({ width: 390, height: 844 });
    await phone.page.goto(`${BASE}/projects/${project.id}`);
    await phone.page.waitForSelector('body[data-live="true"]', { state: 'attached', timeout: 10000 });
    await phone.page.click(`[data-unit-id="${sold.unitId}"]`);
    const detail = await phone.page.locator('#kv-detail').textContent();
    assert.ok(detail.includes(sold.blockNumber) && detail.includes('Terjual'), detail);
    await shot(phone.page, 'live-phone.png');
    await phone.context.close();

    assert.deepEqual(problems, []);
    await context.close();
  });
});

describe('admin console', () => {
  test('logs in, creates a project, adds units, uploads a siteplan and sees the mapping report', async () => {
    const { context, page, problems } = await newPage();
    await page.goto(`${BASE}/admin`);
    await page.locator('#kv-login-view').waitFor({ state: 'visible' });
    await shot(page, 'admin-login.png');
    await page.fill('#kv-login-email', EMAIL);
    await page.fill('#kv-login-password', 'wrong-password');
    await page.click('#kv-login-form button[type="submit"]');
    await page.locator('#kv-login-msg').waitFor({ state: 'visible' });
    assert.match(await page.locator('#kv-login-msg').textContent(), /\S/);
    problems.length = 0; // the 401 above is logged by the browser as a failed resource

    await page.fill('#kv-login-password', PASSWORD);
    await page.click('#kv-login-form button[type="submit"]');
    await page.locator('#kv-app-view').waitFor({ state: 'visible' });

    const name = `E2E Griya ${Date.now()}`;
    await page.click('#kv-project-new summary');
    await page.fill('#kv-project-name', name);
    await page.fill('#kv-project-location', 'Depok, Jawa Barat');
    await page.click('#kv-project-form button[type="submit"]');
    await page.waitForFunction((n) => document.querySelector('#kv-project-select option:checked')?.textContent === n, name);

    await page.click('#kv-bulk-form >> xpath=ancestor::details/summary');
    await page.fill('#kv-bulk-text', [
      'blockNumber;type;price;landArea',
      ...[10, 11, 12, 13, 14, 15, 16].map((n) => `A${n};36/72;Rp 4${n}.000.000;72,5`),
    ].join('\n'));
    await page.click('#kv-bulk-form button[type="submit"]');
    await page.waitForFunction(() => document.querySelectorAll('#kv-units-body tr').length === 7);
    assert.match(await page.locator('#kv-unit-msg').textContent(), /7 unit/);

    await page.setInputFiles('#kv-siteplan-file', path.join(FIXTURES, 'inkscape.svg'));
    await page.click('#kv-siteplan-form button[type="submit"]');
    await page.locator('#kv-report-matched').waitFor();
    assert.equal(await page.locator('#kv-report-matched strong').textContent(), '6');
    assert.equal(await page.locator('#kv-report-missing strong').textContent(), '1');
    const report = await page.locator('#kv-siteplan-report').textContent();
    assert.ok(report.includes('A16') && report.includes('layer2'), report);
    await shot(page, 'admin-report.png');

    // A bad upload shows the server's problem+json detail.
    await page.setInputFiles('#kv-siteplan-file', path.join(FIXTURES, 'hostile', 'reject-xxe.svg'));
    await page.click('#kv-siteplan-form button[type="submit"]');
    await page.waitForSelector('#kv-siteplan-msg.error');
    assert.match(await page.locator('#kv-siteplan-msg').textContent(), /\S/);
    problems.length = 0; // the 400 is logged as a failed resource

    // Changing a status in the table goes through PATCH /units/{id}.
    const select = page.locator('#kv-units-body select[data-block="A12"]');
    await select.selectOption('BOOKED');
    await page.waitForSelector('#kv-units-msg.ok');
    const projectId = await page.locator('#kv-project-select').inputValue();
    const units = await apiCall('GET', `/projects/${projectId}/units?filters[blockNumber][$eq]=A12`);
    assert.equal(units.data[0].status, 'BOOKED');

    // Bookings: a table, or a friendly note while the endpoint is missing; never an error.
    await page.waitForSelector('#kv-bookings > *');
    assert.equal(await page.locator('#kv-bookings .notice.error').count(), 0);
    await shot(page, 'admin.png');

    // The new project's live page draws the Inkscape plan with its inline styles intact.
    await page.goto(`${BASE}/projects/${projectId}`);
    await page.waitForSelector('body[data-live="true"]', { state: 'attached' });
    const a12 = units.data[0].id;
    assert.equal(await renderedFill(page, a12), COLORS.BOOKED);
    const stroke = await page.evaluate(() => getComputedStyle(document.getElementById('A14')).stroke);
    assert.equal(stroke, 'rgb(77, 77, 77)');
    await shot(page, 'live-inkscape.png');
    assert.deepEqual(problems, []);
    await context.close();
  });
});

describe('admin click-to-map', () => {
  test('an unmatched shape is clicked, given a unit from the searchable list, saved, and recolours live on the public page', async () => {
    // A drawing whose second and third lots carry ids no unit matches (a drafter's leftovers),
    // and a lot whose id says B3 while the number drawn in it reads B9 (issue #21).
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 530 120">
  <rect id="B1" x="10" y="10" width="100" height="100" fill="#dddddd" stroke="#555555"/>
  <rect id="lot-x" x="140" y="10" width="100" height="100" fill="#dddddd" stroke="#555555"/>
  <rect id="lot-y" x="270" y="10" width="100" height="100" style="fill:#dddddd;stroke:#555555"/>
  <g id="B3"><rect x="400" y="10" width="100" height="100" fill="#dddddd" stroke="#555555"/><text x="430" y="60">B9</text></g>
</svg>`;
    const name = `E2E Peta ${Date.now()}`;
    const created = await apiCall('POST', '/projects', { name, location: 'Bekasi' });
    const units = await apiCall('POST', `/projects/${created.id}/units`, [1, 2, 3].map((n) => (
      { blockNumber: `B${n}`, type: '36/72', price: 400000000 + n })));
    const b2 = units.find((u) => u.blockNumber === 'B2');

    const { context, page, problems } = await newPage();
    await page.goto(`${BASE}/admin`);
    await page.locator('#kv-login-view').waitFor({ state: 'visible' });
    await page.fill('#kv-login-email', EMAIL);
    await page.fill('#kv-login-password', PASSWORD);
    await page.click('#kv-login-form button[type="submit"]');
    await page.locator('#kv-app-view').waitFor({ state: 'visible' });
    await page.selectOption('#kv-project-select', created.id);

    await page.setInputFiles('#kv-siteplan-file', { name: 'peta.svg', mimeType: 'image/svg+xml', buffer: Buffer.from(svg) });
    await page.click('#kv-siteplan-form button[type="submit"]');
    await page.locator('#kv-mapper').waitFor({ state: 'visible' });
    await page.waitForSelector('#kv-map-canvas [data-map-id="lot-x"].kv-unmatched');
    assert.equal(await page.locator('#kv-map-canvas .kv-unmatched').count(), 2);
    assert.equal(await page.locator('#kv-report-matched strong').textContent(), '2');
    assert.equal(await page.locator('#kv-report-candidates strong').textContent(), '2');
    // The warning about B3 is shown beside the drawing, B3 is outlined, and selecting it shows
    // the warning next to the selected shape.
    const warning = 'element "B3" is matched to unit B3 by its id, but the text drawn in it reads "B9"; check which is right';
    await page.waitForSelector('#kv-map-canvas [id="B3"].kv-warned');
    assert.equal(await page.locator('#kv-map-warnings li').count(), 1);
    assert.ok((await page.locator('#kv-map-warnings li').textContent()).includes(warning));
    assert.equal(await page.locator('#kv-map-warnings li').getAttribute('data-element-id'), 'B3');
    await page.click('#kv-map-warnings [data-select="B3"]');
    assert.equal(await page.locator('#kv-map-element').textContent(), 'B3');
    assert.equal(await page.locator('#kv-map-element-warnings').textContent(), warning);
    await shot(page, 'admin-mapper-warning.png');
    // The drawing's own style attribute went through CSSOM: the strict CSP let it apply.
    assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector('#kv-map-canvas [id="lot-y"]')).fill), 'rgb(221, 221, 221)');
    await shot(page, 'admin-mapper-before.png');

    await page.click('#kv-map-canvas [data-map-id="lot-x"]');
    assert.equal(await page.locator('#kv-map-element').textContent(), 'lot-x');
    await page.fill('#kv-map-search', 'b-2');
    await page.waitForFunction(() => document.querySelectorAll('#kv-map-unit option').length === 1);
    assert.equal(await page.locator('#kv-map-unit').inputValue(), 'B2');
    await page.click('#kv-map-save');
    await page.waitForSelector('#kv-map-msg.ok');
    await page.waitForSelector('#kv-map-canvas [data-map-id="lot-x"].kv-manual:not(.kv-unmatched)');
    assert.equal(await page.locator('#kv-report-matched strong').textContent(), '3');
    const report = await page.locator('#kv-siteplan-report').textContent();
    assert.ok(report.includes('B2 ← lot-x (manual)'), report);
    const stored = await apiCall('GET', `/projects/${created.id}/siteplan/mapping`);
    assert.ok(stored.matched.some((m) => m.blockNumber === 'B2' && m.elementId === 'lot-x' && m.source === 'manual'));
    await shot(page, 'admin-mapper-after.png');

    // The public page draws B2 on the mapped shape and recolours it live.
    const live = await newPage();
    await live.page.goto(`${BASE}/projects/${created.id}`);
    await live.page.waitForSelector('body[data-live="true"]', { state: 'attached', timeout: 10000 });
    assert.equal(await live.page.evaluate((id) => document.querySelector(`[data-unit-id="${id}"]`)?.id, b2.id), 'lot-x');
    assert.equal(await renderedFill(live.page, b2.id), COLORS.AVAILABLE);
    await apiCall('PATCH', `/units/${b2.id}`, { status: 'SOLD' });
    await live.page.waitForFunction(
      ({ id, rgb }) => {
        const el = document.querySelector(`[data-unit-id="${id}"]`);
        return el && getComputedStyle(el).fill === rgb;
      },
      { id: b2.id, rgb: 'rgb(239, 68, 68)' },
      { timeout: 5000, polling: 20 },
    );
    assert.equal(await renderedFill(live.page, b2.id), COLORS.SOLD);
    await shot(live.page, 'live-after-manual-map.png');
    assert.deepEqual(live.problems, []);
    await live.context.close();
    assert.deepEqual(problems, []);
    await context.close();
  });
});

test('pages send a strict CSP and load only same-origin resources', async () => {
  const admin = (await fetch(`${BASE}/admin`)).headers.get('content-security-policy');
  assert.match(admin, /script-src 'self'/);
  assert.doesNotMatch(admin, /unsafe-inline|unsafe-eval/);
  const projects = await apiCall('GET', '/projects');
  const live = (await fetch(`${BASE}/projects/${projects.data[0].id}`)).headers.get('content-security-policy');
  assert.match(live, /script-src 'self'/);
  // Only the siteplan's style attributes are let through, never inline scripts or <style>.
  assert.doesNotMatch(live.replace("style-src-attr 'unsafe-inline'", ''), /unsafe-inline|unsafe-eval/);
  const { context, page } = await newPage();
  const foreign = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(BASE) && !r.url().startsWith(BASE.replace('http', 'ws'))) foreign.push(r.url());
  });
  await page.goto(`${BASE}/projects/${projects.data[0].id}`);
  await page.waitForSelector('body[data-live="true"]', { state: 'attached' });
  assert.deepEqual(foreign, []);
  await context.close();
});
