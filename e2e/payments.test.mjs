// Browser test of the admin console's payment verification: a booking made through the API gets a
// BOOKING_FEE invoice and a PNG proof; in the page the admin sees the proof (fetched with the
// token into a blob: image), approves it, and the booking's schedule shows it paid and ACTIVE.
// Environment as in pages.test.mjs (KAVLING_URL, KAVLING_ADMIN_EMAIL, KAVLING_ADMIN_PASSWORD).
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
// A real 1×1 PNG, so the browser decodes and draws it.
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
  'base64',
);

let browser;
let token;

async function apiCall(method, p, body) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  let payload;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const res = await fetch(`${BASE}/api/v1${p}`, { method, headers, body: payload });
  const text = await res.text();
  const json = text ? JSON.parse(text) : null;
  assert.ok(res.ok, `${method} ${p}: HTTP ${res.status} ${text}`);
  return json;
}

/** Tomorrow in Jakarta, `YYYY-MM-DD`. */
function tomorrowWib() {
  return new Date(Date.now() + (7 + 24) * 3600 * 1000).toISOString().slice(0, 10);
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

describe('admin payment verification', () => {
  test('shows a PNG proof, approves it, and the booking becomes ACTIVE', async () => {
    const projects = await apiCall('GET', '/projects');
    const project = projects.data[0];
    assert.ok(project, 'the demo project exists');
    const units = await apiCall('GET', `/projects/${project.id}/units?filters[status][$eq]=AVAILABLE&sort=blockNumber:desc&pagination[pageSize]=1`);
    const unit = units.data[0];
    assert.ok(unit, 'the demo has an AVAILABLE unit');
    const booking = await apiCall('POST', '/bookings', {
      unitId: unit.id,
      customer: { name: 'Pembeli E2E', phone: '081298765432' },
      bookingFee: 5000000,
    });
    assert.equal(booking.status, 'PENDING_PAYMENT');
    // A down payment follows, so paying the fee activates the booking without completing it.
    const [invoice] = await apiCall('POST', `/bookings/${booking.id}/schedule`, {
      items: [
        { kind: 'BOOKING_FEE', amount: 5000000, dueDate: tomorrowWib() },
        { kind: 'DOWN_PAYMENT', amount: 45000000, dueDate: tomorrowWib() },
      ],
    });
    assert.match(invoice.invoiceNumber, /^INV-\d{4}-\d{3,}$/);
    const form = new FormData();
    form.append('amount', '5000000');
    form.append('method', 'TRANSFER');
    form.append('paidAt', new Date().toISOString());
    form.append('file', new Blob([PNG], { type: 'application/octet-stream' }), 'bukti.png');
    const payment = await apiCall('POST', `/invoices/${invoice.id}/payments`, form);
    assert.equal(payment.status, 'AWAITING_VERIFICATION');

    const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
    });
    await page.goto(`${BASE}/admin`);
    await page.locator('#kv-login-view').waitFor({ state: 'visible' });
    await page.fill('#kv-login-email', EMAIL);
    await page.fill('#kv-login-password', PASSWORD);
    await page.click('#kv-login-form button[type="submit"]');
    await page.locator('#kv-app-view').waitFor({ state: 'visible' });

    // The queue shows the payment with its proof drawn from a blob: URL.
    const item = page.locator(`#kv-payments-queue li[data-payment-id="${payment.id}"]`);
    await item.waitFor({ state: 'visible', timeout: 10000 });
    assert.match(await item.textContent(), new RegExp(invoice.invoiceNumber));
    assert.match(await item.textContent(), new RegExp(booking.bookingCode));
    const img = item.locator('img.proof');
    await img.waitFor({ state: 'visible' });
    assert.match(await img.getAttribute('src'), /^blob:/);
    await page.waitForFunction((id) => {
      const el = document.querySelector(`li[data-payment-id="${id}"] img.proof`);
      return el && el.complete && el.naturalWidth === 1;
    }, payment.id, { timeout: 5000 });
    await page.screenshot({ path: path.join(ARTIFACTS, 'admin-payments-queue.png'), fullPage: true });

    await item.locator('button.approve').click();
    await item.waitFor({ state: 'detached', timeout: 10000 });
    assert.match(await page.locator('#kv-payments-msg').textContent(), /diverifikasi/);

    // The booking's schedule: the invoice PAID, the booking ACTIVE.
    await page.fill('#kv-schedule-code', booking.bookingCode);
    await page.click('#kv-schedule-form button[type="submit"]');
    const row = page.locator(`#kv-schedule tr[data-invoice-id="${invoice.id}"]`);
    await row.waitFor({ state: 'visible', timeout: 10000 });
    assert.equal(await row.locator('.invoice-status').getAttribute('data-status'), 'PAID');
    assert.match(await page.locator('#kv-schedule').textContent(), /ACTIVE/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'admin-payments-schedule.png'), fullPage: true });

    const done = await apiCall('GET', `/bookings/${booking.id}`);
    assert.equal(done.status, 'ACTIVE');
    assert.equal(done.paymentStatus, 'PAID');
    // No script error and no CSP violation (a blocked blob: proof image would show here).
    assert.deepEqual(problems, []);
    await context.close();
  });
});
