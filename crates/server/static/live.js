// The live siteplan page: draws the project's sanitized siteplan, colours every unit by status,
// follows the project's channel over /ws (resuming with `since` after a drop, resubscribing on a
// seq gap) and shows a unit's block, type and price on hover, tap or keyboard focus.
import { api, fetchAll, formatArea, formatRupiah, formatTime, h, importSvg, statusInfo, STATUSES } from './api.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Shapes whose fill is the unit's colour when the unit's element is a group. */
const SHAPES = 'path, rect, circle, ellipse, polygon, polyline';
const PING_EVERY_MS = 20000;
const SILENCE_LIMIT_MS = 45000;
const MAX_BACKOFF_MS = 30000;

const $ = (id) => document.getElementById(id);

const projectId = decodeURIComponent(location.pathname.split('/')[2] || '');
const state = {
  channel: `project:${projectId}`,
  /** Last seq applied; null until the first snapshot. */
  seq: null,
  /** unitId → { unitId, blockNumber, status, color, type, price, landArea, ... } */
  units: new Map(),
  /** unitId → the element drawn for it. */
  elements: new Map(),
  /** unitId → the lot shapes the server paints for it (not a group's labels or glyphs). */
  shapes: new Map(),
  /** element → unitId, for hit-testing events. */
  unitOf: new WeakMap(),
  socket: null,
  attempt: 0,
  reconnectTimer: 0,
  heartbeat: 0,
  lastFrameAt: 0,
  resyncing: false,
  stopped: false,
  selected: null,
};

// ---------------------------------------------------------------- drawing

/** Colours one unit's element (and its shapes) and refreshes its label. */
function paint(unitId, flash = false) {
  const unit = state.units.get(unitId);
  const el = state.elements.get(unitId);
  if (!el) return;
  const status = unit ? unit.status : 'UNKNOWN';
  const color = (unit && unit.color) || statusInfo(status).color;
  if (el instanceof SVGElement) {
    const shapes = state.shapes.get(unitId);
    for (const node of shapes && shapes.length ? shapes : [el, ...el.querySelectorAll(SHAPES)]) {
      node.setAttribute('fill', color);
      node.style.fill = color;
    }
  } else {
    el.style.backgroundColor = color;
  }
  el.setAttribute('data-status', status);
  const parts = [`Blok ${unit ? unit.blockNumber : ''}`, statusInfo(status).label];
  if (unit && unit.type) parts.push(`tipe ${unit.type}`);
  if (unit && typeof unit.price === 'number') parts.push(formatRupiah(unit.price));
  el.setAttribute('aria-label', parts.join(', '));
  if (flash) {
    el.classList.remove('kv-flash');
    // Restart the animation on repeated changes.
    void el.getBoundingClientRect();
    el.classList.add('kv-flash');
  }
}

function attach(unitId, el) {
  state.elements.set(unitId, el);
  state.unitOf.set(el, unitId);
  el.classList.add('kv-unit');
  el.setAttribute('data-unit-id', unitId);
  el.setAttribute('tabindex', '0');
  el.setAttribute('role', 'button');
}

/** Without a siteplan, units are drawn as a grid of tiles so the page is still useful. */
function drawTiles(container) {
  const grid = h('div', { class: 'tiles', role: 'group', 'aria-label': 'Daftar unit' });
  const units = [...state.units.values()]
    .sort((a, b) => a.blockNumber.localeCompare(b.blockNumber, 'id', { numeric: true }));
  for (const u of units) {
    const tile = h('div', { class: 'tile' }, u.blockNumber);
    attach(u.unitId, tile);
    grid.append(tile);
  }
  container.append(grid);
  return grid;
}

// ---------------------------------------------------------------- legend, detail, tooltip

function renderLegend() {
  const counts = new Map(STATUSES.map((s) => [s.key, { n: 0, color: s.color }]));
  for (const u of state.units.values()) {
    const c = counts.get(u.status) || { n: 0, color: u.color };
    c.n += 1;
    if (u.color) c.color = u.color;
    counts.set(u.status, c);
  }
  const items = [...counts.entries()].map(([key, c]) => {
    const info = statusInfo(key);
    const swatch = h('span', { class: 'swatch', 'aria-hidden': 'true' });
    swatch.style.backgroundColor = c.color;
    return h('li', { dataset: { status: key } },
      swatch,
      h('span', { class: 'legend-label' }, info.label,
        info.en !== info.label ? h('span', { class: 'muted small' }, ` ${info.en}`) : null),
      h('strong', { class: 'count', 'aria-label': `${c.n} unit ${info.label}` }, String(c.n)));
  });
  $('kv-legend').replaceChildren(...items);
  $('kv-total').textContent = String(state.units.size);
}

function detailRows(u) {
  const info = statusInfo(u.status);
  const rows = [
    ['Blok', u.blockNumber],
    ['Tipe', u.type || '–'],
    ['Harga', formatRupiah(u.price)],
    ['Status', null],
    ['Luas tanah', formatArea(u.landArea)],
    ['Luas bangunan', formatArea(u.buildingArea)],
  ];
  if (typeof u.bedrooms === 'number' || typeof u.bathrooms === 'number') {
    rows.push(['Kamar', `${u.bedrooms ?? '–'} KT · ${u.bathrooms ?? '–'} KM`]);
  }
  return h('dl', { class: 'facts' }, rows.map(([k, v]) => [
    h('dt', {}, k),
    h('dd', {}, v === null ? (() => {
      const sw = h('span', { class: 'swatch', 'aria-hidden': 'true' });
      sw.style.backgroundColor = u.color || info.color;
      return h('span', { class: 'badge' }, sw, info.en !== info.label ? `${info.label} (${info.en})` : info.label);
    })() : v),
  ]));
}

function renderDetail() {
  const u = state.selected && state.units.get(state.selected);
  $('kv-detail').replaceChildren(u ? detailRows(u)
    : h('p', { class: 'muted' }, 'Pilih sebuah kavling pada siteplan.'));
}

function select(unitId) {
  if (state.selected && state.elements.get(state.selected)) {
    state.elements.get(state.selected).classList.remove('kv-selected');
  }
  state.selected = unitId;
  const el = state.elements.get(unitId);
  if (el) el.classList.add('kv-selected');
  renderDetail();
  // The signed-in part of the page (live-watch.js) offers to watch the selected unit.
  document.dispatchEvent(new CustomEvent('kv-select', { detail: { unitId } }));
}

function showTooltip(unitId, x, y) {
  const u = state.units.get(unitId);
  const tip = $('kv-tooltip');
  if (!u) {
    tip.hidden = true;
    return;
  }
  const info = statusInfo(u.status);
  const sw = h('span', { class: 'swatch', 'aria-hidden': 'true' });
  sw.style.backgroundColor = u.color || info.color;
  tip.replaceChildren(
    h('strong', { class: 'tip-block' }, `Blok ${u.blockNumber}`),
    h('span', {}, `Tipe ${u.type || '–'}`),
    h('span', { class: 'tip-price' }, formatRupiah(u.price)),
    h('span', { class: 'badge' }, sw, info.label),
  );
  tip.hidden = false;
  const pad = 14;
  const rect = tip.getBoundingClientRect();
  const left = Math.min(x + pad, window.innerWidth - rect.width - 8);
  const top = y + pad + rect.height > window.innerHeight ? y - rect.height - pad : y + pad;
  tip.style.left = `${Math.max(8, left)}px`;
  tip.style.top = `${Math.max(8, top)}px`;
}

function hideTooltip() {
  $('kv-tooltip').hidden = true;
}

/** The unit whose element contains `node`, if any. */
function unitAt(node, stop) {
  for (let n = node; n && n !== stop; n = n.parentNode) {
    const id = state.unitOf.get(n);
    if (id) return id;
  }
  return null;
}

function wireInteractions(container) {
  container.addEventListener('pointermove', (ev) => {
    if (ev.pointerType !== 'mouse') return;
    const id = unitAt(ev.target, container);
    if (id) showTooltip(id, ev.clientX, ev.clientY);
    else hideTooltip();
  });
  container.addEventListener('pointerleave', hideTooltip);
  container.addEventListener('click', (ev) => {
    const id = unitAt(ev.target, container);
    if (!id) return;
    select(id);
    showTooltip(id, ev.clientX, ev.clientY);
  });
  container.addEventListener('focusin', (ev) => {
    const id = unitAt(ev.target, container);
    if (!id) return;
    select(id);
    const r = ev.target.getBoundingClientRect();
    showTooltip(id, r.left + r.width / 2, r.top + r.height / 2);
  });
  container.addEventListener('focusout', hideTooltip);
  container.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') hideTooltip();
  });
}

// ---------------------------------------------------------------- state changes

function setUpdated(at) {
  $('kv-updated').textContent = at ? formatTime(at) : new Date().toLocaleTimeString('id-ID');
}

/** Replaces every unit's status (initial availability, or a `snapshot` frame). */
function applySnapshot(units, seq) {
  const seen = new Set();
  for (const s of units) {
    seen.add(s.unitId);
    const u = state.units.get(s.unitId) || { unitId: s.unitId };
    Object.assign(u, { blockNumber: s.blockNumber, status: s.status, color: s.color });
    state.units.set(s.unitId, u);
  }
  for (const id of [...state.units.keys()]) {
    if (!seen.has(id)) state.units.delete(id);
  }
  for (const id of state.elements.keys()) paint(id);
  state.seq = seq;
  document.body.dataset.seq = String(seq);
  renderLegend();
  renderDetail();
  setUpdated(null);
}

/** Applies one `unit` frame. */
function applyUnit(msg) {
  const u = state.units.get(msg.unitId) || { unitId: msg.unitId };
  Object.assign(u, { blockNumber: msg.blockNumber, status: msg.status, color: msg.color });
  state.units.set(msg.unitId, u);
  state.seq = msg.seq;
  document.body.dataset.seq = String(msg.seq);
  paint(msg.unitId, true);
  renderLegend();
  if (state.selected === msg.unitId) renderDetail();
  setUpdated(msg.at);
}

// ---------------------------------------------------------------- realtime

function setConn(kind, text) {
  const p = $('kv-conn');
  p.dataset.state = kind;
  $('kv-conn-text').textContent = text;
  document.body.dataset.live = kind === 'live' ? 'true' : 'false';
}

function send(msg) {
  if (state.socket && state.socket.readyState === WebSocket.OPEN) {
    state.socket.send(JSON.stringify(msg));
  }
}

function subscribe() {
  const msg = { op: 'subscribe', channel: state.channel };
  if (state.seq !== null) msg.since = state.seq;
  send(msg);
}

/**
 * A seq gap means frames were missed: subscribe again from the last seq applied (a repeated
 * subscribe restarts the subscription; the server replays what is missing or sends a snapshot).
 */
function resync() {
  state.resyncing = true;
  setConn('connecting', 'Menyelaraskan…');
  subscribe();
}

function handle(msg) {
  if (msg.channel !== undefined && msg.channel !== state.channel) return;
  switch (msg.type) {
    case 'snapshot':
      applySnapshot(msg.units || [], msg.seq);
      break;
    case 'unit':
      if (state.seq !== null && msg.seq <= state.seq) return; // already applied
      if (state.seq !== null && msg.seq > state.seq + 1) {
        if (!state.resyncing) resync();
        return;
      }
      applyUnit(msg);
      break;
    case 'subscribed':
      if (state.seq !== null && msg.seq > state.seq) {
        resync();
        return;
      }
      state.seq = msg.seq;
      state.resyncing = false;
      state.attempt = 0;
      setConn('live', 'Langsung');
      break;
    case 'error':
      console.warn('kavling realtime error', msg.code, msg.message);
      if (msg.code === 'not_found' && msg.channel === state.channel) {
        showMessage(`Server: ${msg.message || msg.code}`);
        state.stopped = true;
        if (state.socket) state.socket.close(1000, 'unknown project');
        setConn('offline', 'Proyek tidak ditemukan');
      } else if (msg.code === 'unavailable' && state.socket) {
        // The server could not serve the subscription now: reconnect with backoff and `since`.
        state.socket.close(4001, 'unavailable');
      }
      break;
    default: // pong and anything newer: the frame itself proved the link is alive
  }
}

function stopHeartbeat() {
  clearInterval(state.heartbeat);
  state.heartbeat = 0;
}

function startHeartbeat(ws) {
  stopHeartbeat();
  let lastPing = Date.now();
  state.heartbeat = setInterval(() => {
    if (ws !== state.socket) return;
    if (Date.now() - state.lastFrameAt > SILENCE_LIMIT_MS) {
      // A half-open link: drop it and let the reconnect resume from our seq.
      ws.close(4000, 'silent');
      return;
    }
    if (Date.now() - lastPing >= PING_EVERY_MS) {
      lastPing = Date.now();
      send({ op: 'ping' });
    }
  }, 5000);
}

function scheduleReconnect() {
  if (state.stopped) return;
  const ceiling = Math.min(MAX_BACKOFF_MS, 500 * 2 ** state.attempt);
  const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
  state.attempt += 1;
  setConn('offline', `Terputus · mencoba lagi dalam ${Math.max(1, Math.round(delay / 1000))} dtk`);
  clearTimeout(state.reconnectTimer);
  state.reconnectTimer = setTimeout(connect, delay);
}

function connect() {
  clearTimeout(state.reconnectTimer);
  if (state.stopped) return;
  const url = new URL('/ws', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  setConn('connecting', state.attempt > 0 ? 'Menyambung ulang…' : 'Menghubungkan…');
  let ws;
  try {
    ws = new WebSocket(url.href);
  } catch {
    scheduleReconnect();
    return;
  }
  state.socket = ws;
  ws.addEventListener('open', () => {
    state.lastFrameAt = Date.now();
    state.resyncing = false;
    subscribe();
    startHeartbeat(ws);
  });
  ws.addEventListener('message', (ev) => {
    if (ws !== state.socket) return;
    state.lastFrameAt = Date.now();
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (msg && typeof msg === 'object') handle(msg);
  });
  ws.addEventListener('close', () => {
    if (ws !== state.socket) return;
    state.socket = null;
    stopHeartbeat();
    scheduleReconnect();
  });
}

// ---------------------------------------------------------------- start

function showMessage(text) {
  const m = $('kv-message');
  m.textContent = text;
  m.hidden = !text;
}

async function loadSiteplan() {
  const res = await fetch(`/api/v1/projects/${projectId}/siteplan.svg`, { headers: { Accept: 'image/svg+xml' } });
  if (res.status === 404) return null;
  if (!res.ok) throw new Error(`the siteplan could not be loaded (HTTP ${res.status})`);
  return res.text();
}

async function start() {
  if (!UUID.test(projectId)) {
    $('kv-title').textContent = 'Proyek tidak ditemukan';
    showMessage('Alamat halaman ini tidak memuat id proyek yang sah.');
    setConn('offline', 'Tidak terhubung');
    return;
  }
  let project;
  try {
    project = await api(`/projects/${projectId}`);
  } catch (e) {
    $('kv-title').textContent = e.status === 404 ? 'Proyek tidak ditemukan' : 'Gagal memuat proyek';
    showMessage(e.message);
    setConn('offline', 'Tidak terhubung');
    return;
  }
  document.title = `${project.name} · Siteplan langsung · Kavling`;
  $('kv-title').textContent = project.name;
  $('kv-location').textContent = [project.location, project.description].filter(Boolean).join(' · ');

  const plan = $('kv-plan');
  try {
    const [svgText, availability, units] = await Promise.all([
      loadSiteplan(),
      api(`/projects/${projectId}/availability`),
      fetchAll(`/projects/${projectId}/units`),
    ]);
    for (const u of units) {
      state.units.set(u.id, {
        unitId: u.id,
        blockNumber: u.blockNumber,
        status: u.status,
        color: u.color,
        type: u.type,
        price: u.price,
        landArea: u.landArea,
        buildingArea: u.buildingArea,
        bedrooms: u.bedrooms,
        bathrooms: u.bathrooms,
      });
    }
    if (svgText !== null) {
      const svg = importSvg(svgText);
      svg.setAttribute('aria-label', `Siteplan ${project.name}`);
      const geometry = await api(`/projects/${projectId}/siteplan/geometry`);
      const byId = new Map();
      for (const el of svg.querySelectorAll('[id]')) byId.set(el.getAttribute('id'), el);
      for (const g of geometry.units) {
        const el = byId.get(g.elementId);
        if (el) attach(g.unitId, el);
        state.shapes.set(g.unitId, (g.shapeIds || []).map((id) => byId.get(id)).filter(Boolean));
      }
      plan.replaceChildren(svg);
    } else {
      showMessage('Siteplan proyek ini belum diunggah; unit ditampilkan sebagai daftar.');
      plan.replaceChildren();
      drawTiles(plan);
    }
    applySnapshot(availability.units, availability.seq);
    wireInteractions(plan);
  } catch (e) {
    showMessage(`Gagal memuat siteplan: ${e.message}`);
  } finally {
    plan.setAttribute('aria-busy', 'false');
  }
  connect();
  window.addEventListener('online', () => {
    if (!state.socket) connect();
  });
}

start();
