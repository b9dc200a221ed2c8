// Browser test of the chat page (/chat): a buyer and a marketing user (registered, approved and
// funded through the API) get a conversation from the unlock of the buyer's lead. In two browser
// contexts each signs in and opens it; a message sent by one appears live at the other over the
// WebSocket; a message whose text is HTML (`<img src=x onerror=...>`) shows as text and runs
// nothing. Environment as in pages.test.mjs (KAVLING_URL, KAVLING_ADMIN_EMAIL, KAVLING_ADMIN_PASSWORD).
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
const XSS = '<img src=x onerror="window.__pwned=1">';

let browser;

async function call(method, p, { token, body, headers = {} } = {}) {
  const h = { Accept: 'application/json', ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  if (body !== undefined) h['Content-Type'] = 'application/json';
  const res = await fetch(`${BASE}/api/v1${p}`, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${p}: HTTP ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Registers a user and returns their email, password, id and token. */
async function register(role, fullName) {
  const email = `${role.toLowerCase()}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@e2e.kavling`;
  const password = 'rahasia-e2e-123';
  const res = await call('POST', '/auth/register', { body: { email, password, fullName, role } });
  return { email, password, id: res.user.id, token: res.token };
}

before(async () => {
  assert.ok(EMAIL && PASSWORD, 'set KAVLING_ADMIN_EMAIL and KAVLING_ADMIN_PASSWORD');
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

async function signIn(who) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
  });
  await page.goto(`${BASE}/chat`);
  await page.locator('#kv-login-view').waitFor({ state: 'visible' });
  await page.fill('#kv-login-email', who.email);
  await page.fill('#kv-login-password', who.password);
  await page.click('#kv-login-form button[type="submit"]');
  await page.locator('#kv-app-view').waitFor({ state: 'visible' });
  return { context, page, problems };
}

describe('chat page', () => {
  test('two parties talk live; HTML in a message stays text', async () => {
    const admin = (await call('POST', '/auth/login', { body: { email: EMAIL, password: PASSWORD } })).token;
    const buyer = await register('BUYER', 'Budi E2E');
    const marketing = await register('MARKETING', 'Sari E2E');
    await call('POST', `/admin/users/${marketing.id}/kyc`, { token: admin, body: { approved: true } });
    await call('POST', `/admin/wallets/${marketing.id}/topup`, {
      token: admin, body: { amount: 10000000, reference: 'TRF-E2E' },
      headers: { 'Idempotency-Key': `e2e-${Date.now()}` },
    });
    const projects = await call('GET', '/projects', { token: admin });
    const units = await call('GET', `/projects/${projects.data[0].id}/units?pagination[pageSize]=1`, { token: admin });
    const lead = await call('POST', '/leads', { token: buyer.token, body: { unitId: units.data[0].id, consent: true } });
    const unlocked = await call('POST', `/leads/${lead.id}/unlock`, { token: marketing.token });
    const conversation = unlocked.conversationId;
    assert.ok(conversation, 'the unlock opened a conversation');

    const b = await signIn(buyer);
    const m = await signIn(marketing);
    for (const side of [b, m]) {
      const item = side.page.locator(`#kv-conversations li[data-conversation-id="${conversation}"] button`);
      await item.waitFor({ state: 'visible', timeout: 10000 });
      await item.click();
      await side.page.locator('#kv-chat-conn[data-state="live"]').waitFor({ timeout: 10000 });
    }
    assert.match(await b.page.locator('#kv-chat-title').textContent(), /Sari E2E/);

    // The buyer writes; the marketing user sees it live (no reload), and answers.
    await b.page.fill('#kv-send-text', 'Halo, unit ini masih tersedia?');
    await b.page.click('#kv-send-form button[type="submit"]');
    await m.page.locator('#kv-messages li[data-seq="1"] .text').waitFor({ timeout: 5000 });
    assert.equal(await m.page.locator('#kv-messages li[data-seq="1"] .text').textContent(), 'Halo, unit ini masih tersedia?');

    await m.page.fill('#kv-send-text', XSS);
    await m.page.click('#kv-send-form button[type="submit"]');
    for (const side of [b, m]) {
      const text = side.page.locator('#kv-messages li[data-seq="2"] .text');
      await text.waitFor({ timeout: 5000 });
      assert.equal(await text.textContent(), XSS, 'the markup is shown as text');
      assert.equal(await side.page.locator('#kv-messages img').count(), 0, 'no element was made from it');
      assert.equal(await side.page.evaluate(() => window.__pwned), undefined);
      assert.equal(await side.page.locator('#kv-messages li').count(), 2, 'each message once');
    }
    await b.page.screenshot({ path: path.join(ARTIFACTS, 'chat-buyer.png'), fullPage: true });

    // A reload reads the history from REST in order.
    await b.page.reload();
    await b.page.locator(`#kv-conversations li[data-conversation-id="${conversation}"] button`).click();
    await b.page.locator('#kv-messages li[data-seq="2"]').waitFor({ timeout: 5000 });
    assert.deepEqual(await b.page.locator('#kv-messages li').evaluateAll((els) => els.map((e) => e.dataset.seq)), ['1', '2']);

    const history = await call('GET', `/conversations/${conversation}/messages`, { token: buyer.token });
    assert.deepEqual(history.data.map((x) => x.text), ['Halo, unit ini masih tersedia?', XSS]);
    assert.deepEqual([...b.problems, ...m.problems], []);
    await b.context.close();
    await m.context.close();
  });
});
