// The admin console's payments section: the verification queue (payments awaiting an admin, each
// with its proof, approve or reject with a reason) and a booking's payment schedule. A module of
// its own beside admin.js: it reads the same session token and shows itself once signed in.
// Proofs need the bearer token, so they are fetched and shown through blob: URLs.
import { api, ApiError, formatRupiah, formatTime, h } from './api.js';

const TOKEN_KEY = 'kavling.token';
const $ = (id) => document.getElementById(id);
const token = () => sessionStorage.getItem(TOKEN_KEY);

/** Blob URLs of the proofs on screen, revoked when the queue is redrawn. */
let proofUrls = [];

const INVOICE_STATUS = {
  UNPAID: 'Belum dibayar',
  AWAITING_VERIFICATION: 'Menunggu verifikasi',
  PAID: 'Lunas',
  OVERDUE: 'Terlambat',
  VOID: 'Batal',
};
const KIND = {
  BOOKING_FEE: 'Biaya booking', DOWN_PAYMENT: 'Uang muka', INSTALLMENT: 'Cicilan', KPR: 'KPR',
};

function errorText(e) {
  return e instanceof ApiError ? e.describe() : String(e.message || e);
}

function notice(id, kind, text) {
  const p = $(id);
  p.className = `notice ${kind}`;
  p.textContent = text || '';
  p.hidden = !text;
}

const call = (path, options = {}) => api(path, { ...options, token: token() });

/** The proof of a payment as an element: an image, or a link for a PDF. */
async function proofView(p) {
  const res = await fetch(p.proofUrl, { headers: { Authorization: `Bearer ${token()}` }, credentials: 'omit' });
  if (!res.ok) return h('p', { class: 'notice error' }, `Bukti tidak dapat dimuat (HTTP ${res.status}).`);
  const url = URL.createObjectURL(await res.blob());
  proofUrls.push(url);
  if (p.proofContentType === 'application/pdf') {
    return h('a', { href: url, download: `bukti-${p.id}.pdf`, class: 'proof-link' }, 'Buka bukti (PDF)');
  }
  return h('img', { src: url, alt: `Bukti pembayaran ${formatRupiah(p.amount)}`, class: 'proof' });
}

async function decide(p, verified, reason, msgId) {
  try {
    await call(`/payments/${p.id}`, { method: 'PATCH', json: verified ? { verified } : { verified, reason } });
    notice('kv-payments-msg', 'ok', verified
      ? `Pembayaran ${formatRupiah(p.amount)} diverifikasi.`
      : `Pembayaran ${formatRupiah(p.amount)} ditolak.`);
    await loadQueue();
  } catch (e) {
    notice(msgId, 'error', errorText(e));
  }
}

async function queueItem(p) {
  const [invoice, booking] = await Promise.all([
    call(`/invoices/${p.invoiceId}`).catch(() => null),
    call(`/bookings/${p.bookingId}`).catch(() => null),
  ]);
  const msgId = `kv-pay-msg-${p.id}`;
  const reasonId = `kv-pay-reason-${p.id}`;
  const reason = h('input', { id: reasonId, type: 'text', maxlength: 500, placeholder: 'Alasan penolakan' });
  const item = h('li', { class: 'payment-item', dataset: { paymentId: p.id } },
    h('p', {},
      h('strong', {}, invoice ? invoice.invoiceNumber : p.invoiceId), ' · ',
      invoice ? (KIND[invoice.kind] || invoice.kind) : '', ' · ',
      booking ? `${booking.bookingCode} (${(booking.unit && booking.unit.blockNumber) || '–'})` : ''),
    h('p', {}, formatRupiah(p.amount), ' · ', p.method, ' · dibayar ', formatTime(p.paidAt),
      invoice ? ` · tagihan ${formatRupiah(invoice.amount)}, terbayar ${formatRupiah(invoice.paidAmount)}` : ''),
    await proofView(p),
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'approve', onclick: () => decide(p, true, null, msgId) }, 'Setujui'),
      h('label', { for: reasonId, class: 'small' }, 'Alasan'), reason,
      h('button', {
        type: 'button',
        class: 'secondary reject',
        onclick: () => {
          if (!reason.value.trim()) {
            notice(msgId, 'error', 'Isi alasan penolakan.');
            return;
          }
          decide(p, false, reason.value.trim(), msgId);
        },
      }, 'Tolak')),
    h('p', { id: msgId, class: 'notice', role: 'status', hidden: true }));
  return item;
}

/** Redraws the queue: payments awaiting verification, oldest first. */
export async function loadQueue() {
  const box = $('kv-payments-queue');
  if (!box || !token()) return;
  let page;
  try {
    page = await call('/payments?filters[status][$eq]=AWAITING_VERIFICATION&sort=createdAt:asc&pagination[pageSize]=20');
  } catch (e) {
    box.replaceChildren(h('p', { class: 'notice error' }, errorText(e)));
    return;
  }
  for (const url of proofUrls) URL.revokeObjectURL(url);
  proofUrls = [];
  const rows = (page && page.data) || [];
  if (!rows.length) {
    box.replaceChildren(h('p', { class: 'muted' }, 'Tidak ada pembayaran yang menunggu verifikasi.'));
    return;
  }
  const items = [];
  for (const p of rows) items.push(await queueItem(p));
  box.replaceChildren(h('ul', { class: 'payment-queue' }, items));
  const total = page.meta && page.meta.pagination && page.meta.pagination.total;
  if (total > rows.length) box.append(h('p', { class: 'muted small' }, `${rows.length} dari ${total} pembayaran.`));
}

/** Shows a booking's schedule: its invoices with status and amounts. */
async function showSchedule(code) {
  const box = $('kv-schedule');
  notice('kv-schedule-msg', 'info', '');
  let booking;
  try {
    const found = await call(`/bookings?filters[bookingCode][$containsi]=${encodeURIComponent(code)}&pagination[pageSize]=1`);
    booking = found.data[0];
    if (!booking) {
      notice('kv-schedule-msg', 'error', `Booking ${code} tidak ditemukan.`);
      box.replaceChildren();
      return;
    }
    const invoices = await call(`/bookings/${booking.id}/invoices?pagination[pageSize]=100`);
    const rows = invoices.data || [];
    box.replaceChildren(
      h('p', {}, h('strong', {}, booking.bookingCode), ` · ${booking.status} · ${booking.paymentStatus}`),
      rows.length ? h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, ['Nomor', 'Jenis', 'Jatuh tempo', 'Tagihan', 'Terbayar', 'Status']
          .map((c) => h('th', { scope: 'col', class: ['Tagihan', 'Terbayar'].includes(c) ? 'num' : null }, c)))),
        h('tbody', {}, rows.map((i) => h('tr', { dataset: { invoiceId: i.id } },
          h('th', { scope: 'row' }, i.invoiceNumber),
          h('td', {}, KIND[i.kind] || i.kind),
          h('td', {}, i.dueDate),
          h('td', { class: 'num' }, formatRupiah(i.amount)),
          h('td', { class: 'num' }, formatRupiah(i.paidAmount)),
          h('td', { class: 'invoice-status', dataset: { status: i.status } }, INVOICE_STATUS[i.status] || i.status))))))
        : h('p', { class: 'muted' }, 'Booking ini belum punya jadwal pembayaran.'));
  } catch (e) {
    notice('kv-schedule-msg', 'error', errorText(e));
  }
}

function start() {
  const section = $('kv-payments');
  if (!section) return;
  $('kv-payments-refresh').addEventListener('click', loadQueue);
  $('kv-schedule-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const code = $('kv-schedule-code').value.trim();
    if (code) showSchedule(code);
  });
  // admin.js reveals the app view once signed in: load the queue then (and now, if already).
  const view = $('kv-app-view');
  let shown = false;
  const check = () => {
    const visible = view && !view.hidden && token();
    if (visible && !shown) loadQueue();
    shown = Boolean(visible);
  };
  if (view) new MutationObserver(check).observe(view, { attributes: true, attributeFilter: ['hidden'] });
  check();
}

start();
