// Browser test of the signed-in buyer on the live page: sign in, tap a unit, watch it, and see the
// notification badge count the unit becoming AVAILABLE (delivered on the user's own channel);
// opening the list marks it read. Same environment as pages.test.mjs (KAVLING_URL, admin
// credentials from the demo seed, Debian's chromium through playwright-core).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const BASE = (process.env.KAVLING_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const ARTIFACTS = process.env.KAVLING_ARTIFACTS || path.join(here, '..', 'tests-artifacts');

let browser;

async function call(method, p, body, token) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`${BASE}/api/v1${p}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${p}: HTTP ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  if (browser) await browser.close();
});

test('a signed-in buyer taps a unit to watch it and the badge counts its return to AVAILABLE', async () => {
  const admin = (await call('POST', '/auth/login', {
    email: process.env.KAVLING_ADMIN_EMAIL, password: process.env.KAVLING_ADMIN_PASSWORD,
  })).token;
  const email = `pembeli-${Date.now()}@example.com`;
  const password = 'rahasia-pembeli-1';
  const buyer = await call('POST', '/auth/register', { email, password, fullName: 'Dewi Pembeli', role: 'BUYER' });

  const projects = await call('GET', '/projects');
  const project = projects.data.find((p) => p.siteplanVersion > 0);
  const [availability, geometry] = await Promise.all([
    call('GET', `/projects/${project.id}/availability`),
    call('GET', `/projects/${project.id}/siteplan/geometry`),
  ]);
  const drawn = new Set(geometry.units.map((g) => g.unitId));
  // A drawn unit not touched by the other page test: the last AVAILABLE one.
  const unit = availability.units.filter((u) => u.status === 'AVAILABLE' && drawn.has(u.unitId)).at(-1);
  assert.ok(unit, 'a drawn AVAILABLE unit');
  await call('PATCH', `/units/${unit.unitId}`, { status: 'MAINTENANCE' }, admin);

  const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
  });
  await page.goto(`${BASE}/projects/${project.id}`);
  await page.waitForSelector('body[data-live="true"]', { state: 'attached', timeout: 10000 });

  // Before signing in, a selected unit only offers to sign in.
  await page.click(`[data-unit-id="${unit.unitId}"]`);
  assert.match(await page.locator('#kv-watch').textContent(), /Masuk/);
  await page.fill('#kv-signin input[name=email]', email);
  await page.fill('#kv-signin input[name=password]', password);
  await page.click('#kv-signin button[type=submit]');
  await page.waitForSelector('body[data-user-live="true"]', { state: 'attached', timeout: 10000 });
  assert.equal(await page.locator('#kv-me-name').textContent(), 'Dewi Pembeli');
  assert.equal(await page.locator('#kv-badge').isHidden(), true);

  // Tap the unit, then watch it.
  await page.click(`[data-unit-id="${unit.unitId}"]`);
  await page.click('#kv-watch-button');
  await page.waitForSelector('#kv-watch-button[data-watching="true"]', { timeout: 5000 });
  const watches = await call('GET', '/me/watches', undefined, buyer.token);
  assert.equal(watches.data.length, 1);
  assert.equal(watches.data[0].unitId, unit.unitId);

  // The unit comes back: one notification, the badge shows 1.
  await call('PATCH', `/units/${unit.unitId}`, { status: 'AVAILABLE' }, admin);
  await page.waitForSelector('body[data-unread="1"]', { state: 'attached', timeout: 5000 });
  assert.equal(await page.locator('#kv-badge').textContent(), '1');
  await page.screenshot({ path: path.join(ARTIFACTS, 'live-watch-badge.png'), fullPage: true });

  // Opening the list shows it and marks it read.
  await page.click('#kv-bell');
  const note = page.locator('#kv-notes li[data-kind="unit_available"]');
  await note.waitFor({ timeout: 2000 });
  assert.match(await note.textContent(), /is available/);
  await page.waitForSelector('body[data-unread="0"]', { state: 'attached', timeout: 5000 });
  const unread = await call('GET', '/me/notifications?filters[readAt][$null]=true', undefined, buyer.token);
  assert.equal(unread.meta.pagination.total, 0);

  // A reload keeps the session, the watch and the read state.
  await page.reload();
  await page.waitForSelector('body[data-user-live="true"]', { state: 'attached', timeout: 10000 });
  await page.click(`[data-unit-id="${unit.unitId}"]`);
  await page.waitForSelector('#kv-watch-button[data-watching="true"]', { timeout: 5000 });
  assert.equal(await page.locator('#kv-badge').isHidden(), true);
  assert.deepEqual(problems, []);
  await context.close();
});
