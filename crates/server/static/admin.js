// The admin console: log in, pick or create a project, upload its siteplan and read the mapping
// report, map the shapes automatic matching missed by clicking them, add units (one, or a pasted
// CSV/JSON list), change unit statuses, see bookings.
// The token lives in sessionStorage only (gone when the tab closes).
import { api, ApiError, fetchAll, formatRupiah, formatTime, h, importSvg, STATUSES, statusBadge } from './api.js';

const TOKEN_KEY = 'kavling.token';
const USER_KEY = 'kavling.user';
const PROJECT_KEY = 'kavling.project';

const $ = (id) => document.getElementById(id);

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  user: null,
  projects: [],
  projectId: sessionStorage.getItem(PROJECT_KEY),
};
try {
  state.user = JSON.parse(sessionStorage.getItem(USER_KEY) || 'null');
} catch {
  state.user = null;
}

// ---------------------------------------------------------------- helpers

/** Shows a notice (`kind`: ok, error, info) in a `<p class="notice">`, or hides it. */
function notice(id, kind, text) {
  const p = $(id);
  p.className = `notice ${kind}`;
  p.textContent = text || '';
  p.hidden = !text;
}

function errorText(e) {
  return e instanceof ApiError ? e.describe() : String(e.message || e);
}

/** API call with the admin's token; a 401 means the session is over. */
async function call(path, options = {}) {
  try {
    return await api(path, { ...options, token: state.token });
  } catch (e) {
    if (e instanceof ApiError && e.status === 401 && state.token) {
      logout('Sesi berakhir, silakan masuk lagi.');
    }
    throw e;
  }
}

/** Runs `fn` with the form's submit button disabled, reporting failures in `msgId`. */
async function busy(form, msgId, fn) {
  const button = form.querySelector('button[type="submit"]');
  if (button) button.disabled = true;
  notice(msgId, 'info', '');
  try {
    await fn();
  } catch (e) {
    notice(msgId, 'error', errorText(e));
  } finally {
    if (button) button.disabled = false;
  }
}

const project = () => state.projects.find((p) => p.id === state.projectId);

// ---------------------------------------------------------------- session

function showViews() {
  const signedIn = Boolean(state.token);
  $('kv-login-view').hidden = signedIn;
  $('kv-app-view').hidden = !signedIn;
  $('kv-whoami').hidden = !signedIn;
  if (signedIn && state.user) {
    $('kv-user').textContent = `${state.user.fullName || state.user.email} · ${state.user.role}`;
  }
}

function logout(message) {
  state.token = null;
  state.user = null;
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(USER_KEY);
  showViews();
  notice('kv-login-msg', 'error', message || '');
}

$('kv-login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  busy(form, 'kv-login-msg', async () => {
    const res = await api('/auth/login', {
      method: 'POST',
      json: { email: $('kv-login-email').value.trim(), password: $('kv-login-password').value },
    });
    state.token = res.token;
    state.user = res.user;
    sessionStorage.setItem(TOKEN_KEY, res.token);
    sessionStorage.setItem(USER_KEY, JSON.stringify(res.user));
    $('kv-login-password').value = '';
    showViews();
    await loadProjects();
  });
});

$('kv-logout').addEventListener('click', () => logout(''));

// ---------------------------------------------------------------- projects

async function loadProjects() {
  try {
    state.projects = await fetchAll('/projects?sort=name:asc');
  } catch (e) {
    notice('kv-project-msg', 'error', errorText(e));
    return;
  }
  if (!project()) state.projectId = state.projects.length ? state.projects[0].id : null;
  renderProjectSelect();
  await selectProject(state.projectId);
}

function renderProjectSelect() {
  const select = $('kv-project-select');
  select.replaceChildren(...state.projects.map((p) => h('option', { value: p.id, selected: p.id === state.projectId }, p.name)));
  if (!state.projects.length) select.append(h('option', { value: '' }, '(belum ada proyek)'));
}

async function selectProject(id) {
  state.projectId = id || null;
  if (id) sessionStorage.setItem(PROJECT_KEY, id);
  const link = $('kv-live-link');
  link.hidden = !id;
  if (id) link.href = `/projects/${id}`;
  const p = project();
  $('kv-subtitle').textContent = p ? `${p.name}${p.location ? ` · ${p.location}` : ''}` : 'Proyek, siteplan, unit dan booking';
  $('kv-siteplan-report').replaceChildren();
  notice('kv-siteplan-msg', 'info', p && p.siteplanVersion > 0
    ? `Siteplan versi ${p.siteplanVersion} terpasang${p.siteplanUpdatedAt ? ` (${formatTime(p.siteplanUpdatedAt)})` : ''}.`
    : (p ? 'Proyek ini belum punya siteplan.' : ''));
  await Promise.all([loadUnits(), loadBookings(), loadMapper()]);
}

$('kv-project-select').addEventListener('change', (ev) => selectProject(ev.currentTarget.value));

$('kv-project-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  busy(form, 'kv-project-msg', async () => {
    const hold = Number($('kv-project-hold').value);
    const created = await call('/projects', {
      method: 'POST',
      json: {
        name: $('kv-project-name').value.trim(),
        location: $('kv-project-location').value.trim(),
        description: $('kv-project-description').value.trim(),
        holdMinutes: Number.isFinite(hold) && hold > 0 ? hold : undefined,
      },
    });
    form.reset();
    $('kv-project-new').open = false;
    state.projectId = created.id;
    await loadProjects();
    notice('kv-project-msg', 'ok', `Proyek "${created.name}" dibuat.`);
  });
});

// ---------------------------------------------------------------- siteplan

function chipList(items) {
  return items.length ? h('ul', { class: 'chips' }, items.map((t) => h('li', {}, t)))
    : h('p', { class: 'muted small' }, 'Tidak ada.');
}

const SOURCE_LABELS = { id: 'id', label: 'nama', text: 'teks', manual: 'manual' };

/** `rect9 “Shop-A4” → A4?`: an unmatched element with its human label and hint. */
function described(e) {
  return `${e.elementId}${e.label && e.label !== e.elementId ? ` “${e.label}”` : ''}${e.hint ? ` → ${e.hint}?` : ''}`;
}

function renderReport(r) {
  const stat = (n, label, id) => h('div', { class: 'stat', id }, h('strong', {}, String(n)), h('span', { class: 'muted small' }, label));
  const units = new Set(r.matched.map((m) => m.blockNumber));
  $('kv-siteplan-report').replaceChildren(
    h('div', { class: 'stats' },
      stat(r.elementCount, 'elemen', 'kv-report-elements'),
      stat(r.shapeCount, 'bentuk tertutup', 'kv-report-shapes'),
      stat(r.candidateCount, 'kandidat kavling', 'kv-report-candidates'),
      stat(units.size, 'unit cocok', 'kv-report-matched'),
      stat(r.unmatchedElementIds.length, 'elemen tanpa unit', 'kv-report-unmatched'),
      stat(r.unitsWithoutElement.length, 'unit tanpa elemen', 'kv-report-missing')),
    h('details', { open: r.matched.length <= 40 },
      h('summary', {}, `Cocok (${r.matched.length})`),
      chipList(r.matched.map((m) => {
        const from = m.elementId === m.blockNumber ? m.blockNumber : `${m.blockNumber} ← ${m.elementId}`;
        return `${from} (${SOURCE_LABELS[m.source] || m.source})`;
      }))),
    h('details', { open: true },
      h('summary', {}, `Kandidat kavling tanpa unit (${r.candidates.length})`),
      chipList(r.candidates.map(described))),
    h('details', { open: true },
      h('summary', {}, `Elemen tanpa unit (${r.unmatchedElementIds.length})`),
      chipList(r.unmatchedElementIds)),
    h('details', {},
      h('summary', {}, `Elemen lain: id buatan aplikasi, grup, garis (${r.otherElements.length})`),
      chipList(r.otherElements.map(described))),
    h('details', { open: true },
      h('summary', {}, `Unit tanpa elemen (${r.unitsWithoutElement.length})`),
      chipList(r.unitsWithoutElement)),
    h('details', { open: r.warnings.length > 0 },
      h('summary', {}, `Peringatan (${r.warnings.length})`),
      r.warnings.length ? h('ul', {}, r.warnings.map((w) => h('li', {}, w))) : h('p', { class: 'muted small' }, 'Tidak ada.')),
  );
}

$('kv-siteplan-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  busy(form, 'kv-siteplan-msg', async () => {
    if (!state.projectId) throw new Error('Pilih atau buat proyek dulu.');
    const file = $('kv-siteplan-file').files[0];
    if (!file) throw new Error('Pilih berkas SVG.');
    $('kv-siteplan-report').replaceChildren();
    const text = await file.text();
    const report = await call(`/projects/${state.projectId}/siteplan`, {
      method: 'PUT',
      body: text,
      headers: { 'Content-Type': 'image/svg+xml' },
    });
    renderReport(report);
    const matchedUnits = new Set(report.matched.map((m) => m.blockNumber)).size;
    notice('kv-siteplan-msg', 'ok', `Siteplan "${file.name}" diunggah: ${matchedUnits} unit cocok.`);
    const fresh = await call(`/projects/${state.projectId}`);
    state.projects = state.projects.map((p) => (p.id === fresh.id ? fresh : p));
    await loadMapper(report);
  });
});

// ---------------------------------------------------------------- click-to-map

const mapper = {
  /** The drawn siteplan's elements by id. */
  byId: new Map(),
  /** elementId → the report's matched entry. */
  matched: new Map(),
  unmatched: new Set(),
  /** elementId → the report's warnings about it. */
  warnings: new Map(),
  /** elementId → the unit its name nearly spells. */
  hints: new Map(),
  units: [],
  selected: null,
};

/** `Blok A-12` → `a12`: the same loose form the server uses for ids, for searching. */
const loose = (s) => s.toLowerCase().replace(/[\s_.\-]+/g, '');

/** Loads the drawing, the report and the units, and draws the mapper (hidden without a siteplan). */
async function loadMapper(report) {
  const section = $('kv-mapper');
  const p = project();
  if (!p || !(p.siteplanVersion > 0 || report)) {
    section.hidden = true;
    return;
  }
  try {
    const [r, svgText, units] = await Promise.all([
      report || call(`/projects/${p.id}/siteplan/mapping`),
      fetch(`/api/v1/projects/${p.id}/siteplan.svg`, { headers: { Accept: 'image/svg+xml' } }).then((res) => {
        if (!res.ok) throw new Error(`siteplan HTTP ${res.status}`);
        return res.text();
      }),
      fetchAll(`/projects/${p.id}/units?sort=blockNumber:asc`, { token: state.token }),
    ]);
    if (p.id !== state.projectId) return;
    const svg = importSvg(svgText, { cssomStyles: true });
    svg.setAttribute('aria-label', `Siteplan ${p.name}`);
    mapper.byId = new Map([...svg.querySelectorAll('[id]')].map((el) => [el.getAttribute('id'), el]));
    mapper.units = units;
    $('kv-map-canvas').replaceChildren(svg);
    if (!report) renderReport(r);
    applyReport(r);
    selectShape(null);
    section.hidden = false;
  } catch (e) {
    section.hidden = false;
    notice('kv-map-msg', 'error', `Gagal memuat siteplan untuk pemetaan: ${errorText(e)}`);
  }
}

/** Marks the drawing from a report: unmatched shapes dashed, manual ones outlined, shapes with
 * warnings outlined in amber and their warnings listed beside the drawing. */
function applyReport(r) {
  mapper.matched = new Map(r.matched.map((m) => [m.elementId, m]));
  mapper.unmatched = new Set(r.unmatchedShapeIds);
  mapper.warnings = new Map();
  for (const w of r.elementWarnings) {
    mapper.warnings.set(w.elementId, [...(mapper.warnings.get(w.elementId) || []), w.message]);
  }
  mapper.hints = new Map(r.candidates.filter((c) => c.hint).map((c) => [c.elementId, c.hint]));
  for (const [id, el] of mapper.byId) {
    const entry = mapper.matched.get(id);
    const warned = mapper.warnings.has(id);
    const candidate = mapper.unmatched.has(id) || Boolean(entry) || warned;
    el.classList.toggle('kv-candidate', candidate);
    el.classList.toggle('kv-unmatched', mapper.unmatched.has(id));
    el.classList.toggle('kv-warned', warned);
    if (warned) el.setAttribute('data-warnings', String(mapper.warnings.get(id).length));
    else el.removeAttribute('data-warnings');
    el.classList.toggle('kv-manual', Boolean(entry && entry.source === 'manual'));
    if (candidate) el.setAttribute('data-map-id', id);
    else el.removeAttribute('data-map-id');
    if (entry) el.setAttribute('data-block', entry.blockNumber);
    else el.removeAttribute('data-block');
  }
  const list = [...mapper.warnings].flatMap(([id, messages]) => messages.map((m) => h('li', { 'data-element-id': id },
    h('button', { type: 'button', class: 'secondary', 'data-select': id, disabled: !mapper.byId.has(id) }, 'Tunjukkan'), m)));
  $('kv-map-warnings').replaceChildren(...list);
  $('kv-map-warnings-count').textContent = String(list.length);
  $('kv-map-warnings-box').hidden = list.length === 0;
  renderUnitOptions();
}

function selectShape(id) {
  if (mapper.selected) mapper.byId.get(mapper.selected)?.classList.remove('kv-selected');
  mapper.selected = id;
  const entry = id ? mapper.matched.get(id) : null;
  $('kv-map-element').textContent = id || '–';
  $('kv-map-current').textContent = !id ? 'Klik sebuah bentuk pada gambar.'
    : entry ? `Sekarang: unit ${entry.blockNumber} (${SOURCE_LABELS[entry.source] || entry.source}).` : 'Belum terhubung ke unit.';
  if (id) mapper.byId.get(id)?.classList.add('kv-selected');
  // The selected shape's own warnings next to it, and a near-miss hint as the search.
  $('kv-map-element-warnings').replaceChildren(...(id && mapper.warnings.get(id) || [])
    .map((m) => h('p', { class: 'notice warn' }, m)));
  const hint = id && !entry ? mapper.hints.get(id) : null;
  if (hint) $('kv-map-search').value = hint;
  $('kv-map-clear').disabled = !(entry && entry.source === 'manual');
  renderUnitOptions();
}

/** The unit list, filtered by the search box; units without a shape first. */
function renderUnitOptions() {
  const q = loose($('kv-map-search').value);
  const drawn = new Set([...mapper.matched.values()].map((m) => m.blockNumber));
  const units = mapper.units
    .filter((u) => !q || loose(u.blockNumber).includes(q))
    .sort((a, b) => Number(drawn.has(a.blockNumber)) - Number(drawn.has(b.blockNumber)));
  const select = $('kv-map-unit');
  const keep = select.value;
  select.replaceChildren(...units.map((u) => h('option', { value: u.blockNumber, selected: u.blockNumber === keep },
    `${u.blockNumber}${drawn.has(u.blockNumber) ? '' : ' · belum ada bentuk'}`)));
  if (units.length === 1) select.value = units[0].blockNumber;
  $('kv-map-save').disabled = !mapper.selected || !select.value;
}

async function saveMapping(elementId, blockNumber) {
  const r = await call(`/projects/${state.projectId}/siteplan/mapping`, {
    method: 'PUT',
    json: { elements: { [elementId]: blockNumber } },
  });
  renderReport(r);
  applyReport(r);
  selectShape(elementId);
  return r;
}

$('kv-map-canvas').addEventListener('click', (ev) => {
  const el = ev.target instanceof Element ? ev.target.closest('[data-map-id]') : null;
  if (el) selectShape(el.getAttribute('data-map-id'));
});
$('kv-map-warnings').addEventListener('click', (ev) => {
  const button = ev.target instanceof Element ? ev.target.closest('[data-select]') : null;
  if (!button) return;
  const id = button.getAttribute('data-select');
  selectShape(id);
  mapper.byId.get(id)?.scrollIntoView({ block: 'nearest', inline: 'nearest' });
});
$('kv-map-search').addEventListener('input', renderUnitOptions);
$('kv-map-unit').addEventListener('change', renderUnitOptions);
$('kv-map-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  busy(form, 'kv-map-msg', async () => {
    const block = $('kv-map-unit').value;
    if (!mapper.selected || !block) throw new Error('Pilih bentuk dan unitnya dulu.');
    const id = mapper.selected;
    await saveMapping(id, block);
    notice('kv-map-msg', 'ok', `Bentuk ${id} dipetakan ke unit ${block}.`);
    $('kv-map-search').value = '';
    renderUnitOptions();
  });
});
$('kv-map-clear').addEventListener('click', () => {
  busy($('kv-map-form'), 'kv-map-msg', async () => {
    const id = mapper.selected;
    if (!id) return;
    await saveMapping(id, null);
    notice('kv-map-msg', 'ok', `Pemetaan manual bentuk ${id} dihapus.`);
  });
});

// ---------------------------------------------------------------- units

const FIELD_ALIASES = {
  blocknumber: 'blockNumber', block: 'blockNumber', blok: 'blockNumber',
  type: 'type', tipe: 'type',
  price: 'price', harga: 'price',
  landarea: 'landArea', luastanah: 'landArea',
  buildingarea: 'buildingArea', luasbangunan: 'buildingArea',
  bedrooms: 'bedrooms', kt: 'bedrooms',
  bathrooms: 'bathrooms', km: 'bathrooms',
};

/** `Rp 450.000.000` or `450000000` → 450000000; anything else → NaN. */
function parsePrice(v) {
  const digits = String(v).replace(/^\s*Rp\.?\s*/i, '').replace(/[.\s_]/g, '');
  return /^\d+$/.test(digits) ? Number(digits) : NaN;
}

/** Splits one CSV line on `sep`, honouring double quotes. */
function csvLine(line, sep) {
  const out = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i += 1) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') { cur += '"'; i += 1; } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === sep) { out.push(cur); cur = ''; } else cur += c;
  }
  out.push(cur);
  return out.map((s) => s.trim());
}

/** A unit object from text fields, typed as the API expects. */
function unitFrom(fields, decimalComma) {
  const unit = {};
  for (const [k, raw] of Object.entries(fields)) {
    const v = typeof raw === 'string' ? raw.trim() : raw;
    if (v === '' || v === undefined || v === null) continue;
    if (k === 'price') unit.price = typeof v === 'number' ? v : parsePrice(v);
    else if (k === 'landArea' || k === 'buildingArea') unit[k] = Number(decimalComma ? String(v).replace(',', '.') : v);
    else if (k === 'bedrooms' || k === 'bathrooms') unit[k] = Number(v);
    else unit[k] = String(v);
  }
  for (const k of ['price', 'landArea', 'buildingArea', 'bedrooms', 'bathrooms']) {
    if (k in unit && !Number.isFinite(unit[k])) throw new Error(`"${fields[k]}" is not a number (${k}, block ${fields.blockNumber || '?'})`);
  }
  return unit;
}

/** Pasted CSV (header row; `,` or `;`) or JSON (an object or an array) → units. */
function parseBulk(text) {
  const t = text.trim();
  if (!t) throw new Error('Tempel CSV atau JSON dulu.');
  if (t.startsWith('[') || t.startsWith('{')) {
    let data;
    try {
      data = JSON.parse(t);
    } catch (e) {
      throw new Error(`JSON tidak valid: ${e.message}`);
    }
    return Array.isArray(data) ? data : [data];
  }
  const lines = t.split(/\r?\n/).filter((l) => l.trim());
  const sep = lines[0].includes(';') && !lines[0].includes(',') ? ';' : (lines[0].includes('\t') ? '\t' : ',');
  const header = csvLine(lines[0], sep).map((c) => FIELD_ALIASES[c.toLowerCase().replace(/[^a-z]/g, '')]);
  const unknown = csvLine(lines[0], sep).filter((c, i) => !header[i]);
  if (unknown.length) throw new Error(`Kolom tidak dikenal: ${unknown.join(', ')}`);
  if (!header.includes('blockNumber') || !header.includes('type') || !header.includes('price')) {
    throw new Error('Baris judul harus memuat blockNumber, type dan price.');
  }
  return lines.slice(1).map((line) => {
    const cells = csvLine(line, sep);
    const fields = {};
    header.forEach((k, i) => { fields[k] = cells[i]; });
    return unitFrom(fields, sep === ';');
  });
}

async function addUnits(body, msgId) {
  const created = await call(`/projects/${state.projectId}/units`, { method: 'POST', json: body });
  const n = Array.isArray(created) ? created.length : 1;
  notice(msgId, 'ok', `${n} unit ditambahkan.`);
  await loadUnits();
}

$('kv-unit-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  busy(form, 'kv-unit-msg', async () => {
    if (!state.projectId) throw new Error('Pilih atau buat proyek dulu.');
    const unit = unitFrom(Object.fromEntries(new FormData(form)), true);
    await addUnits(unit, 'kv-unit-msg');
    form.reset();
  });
});

$('kv-bulk-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  busy(form, 'kv-unit-msg', async () => {
    if (!state.projectId) throw new Error('Pilih atau buat proyek dulu.');
    const units = parseBulk($('kv-bulk-text').value);
    if (!units.length) throw new Error('Tidak ada baris unit.');
    await addUnits(units, 'kv-unit-msg');
    $('kv-bulk-text').value = '';
  });
});

function statusSelect(unit) {
  const select = h('select', { 'aria-label': `Status blok ${unit.blockNumber}`, dataset: { unitId: unit.id, block: unit.blockNumber } },
    STATUSES.map((s) => h('option', { value: s.key, selected: s.key === unit.status },
      s.en !== s.label ? `${s.label} (${s.en})` : s.label)));
  select.addEventListener('change', async () => {
    const next = select.value;
    select.disabled = true;
    try {
      const updated = await call(`/units/${unit.id}`, { method: 'PATCH', json: { status: next, expectedStatus: unit.status } });
      notice('kv-units-msg', 'ok', `Blok ${updated.blockNumber}: ${unit.status} → ${updated.status}.`);
      Object.assign(unit, updated);
      select.closest('tr').replaceWith(unitRow(unit));
    } catch (e) {
      notice('kv-units-msg', 'error', `Blok ${unit.blockNumber}: ${errorText(e)}`);
      select.value = unit.status;
      if (e instanceof ApiError && e.code === 'status_conflict') await loadUnits();
    } finally {
      select.disabled = false;
    }
  });
  return select;
}

function unitRow(u) {
  return h('tr', { dataset: { unitId: u.id } },
    h('th', { scope: 'row' }, u.blockNumber),
    h('td', {}, u.type),
    h('td', { class: 'num' }, formatRupiah(u.price)),
    h('td', {}, h('span', { class: 'actions' }, statusBadge(u.status), statusSelect(u))),
    h('td', { class: 'muted' }, formatTime(u.updatedAt)));
}

async function loadUnits() {
  const body = $('kv-units-body');
  if (!state.projectId) {
    body.replaceChildren();
    $('kv-units-count').textContent = '';
    return;
  }
  try {
    const units = await fetchAll(`/projects/${state.projectId}/units?sort=blockNumber:asc`);
    units.sort((a, b) => a.blockNumber.localeCompare(b.blockNumber, 'id', { numeric: true }));
    body.replaceChildren(...units.map(unitRow));
    $('kv-units-count').textContent = `${units.length} unit`;
    notice('kv-units-msg', 'info', units.length ? '' : 'Belum ada unit di proyek ini.');
  } catch (e) {
    notice('kv-units-msg', 'error', errorText(e));
  }
}

// ---------------------------------------------------------------- bookings

async function loadBookings() {
  const box = $('kv-bookings');
  let page;
  try {
    page = await call('/bookings?pagination[pageSize]=50');
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      box.replaceChildren(h('p', { class: 'notice info' }, 'Daftar booking belum tersedia di server ini (GET /api/v1/bookings belum ada).'));
    } else {
      box.replaceChildren(h('p', { class: 'notice error' }, errorText(e)));
    }
    return;
  }
  const rows = (page && page.data) || [];
  if (!rows.length) {
    box.replaceChildren(h('p', { class: 'muted' }, 'Belum ada booking.'));
    return;
  }
  box.replaceChildren(h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, ['Kode', 'Unit', 'Pelanggan', 'Status', 'Pembayaran', 'Biaya booking', 'Tanggal', 'Kedaluwarsa']
      .map((c) => h('th', { scope: 'col', class: c === 'Biaya booking' ? 'num' : null }, c)))),
    h('tbody', {}, rows.map((b) => h('tr', {},
      h('th', { scope: 'row' }, b.bookingCode || b.id),
      h('td', {}, (b.unit && b.unit.blockNumber) || b.unitId || '–'),
      h('td', {}, (b.customer && (b.customer.name || b.customer.fullName)) || '–'),
      h('td', {}, b.status || '–'),
      h('td', {}, b.paymentStatus || '–'),
      h('td', { class: 'num' }, formatRupiah(b.bookingFee)),
      h('td', {}, b.bookingDate ? formatTime(b.bookingDate) : '–'),
      h('td', {}, b.expiresAt ? formatTime(b.expiresAt) : '–')))))));
  const total = page.meta && page.meta.pagination && page.meta.pagination.total;
  if (total > rows.length) box.append(h('p', { class: 'muted small' }, `${rows.length} dari ${total} booking terbaru.`));
}

$('kv-bookings-refresh').addEventListener('click', loadBookings);

// ---------------------------------------------------------------- start

showViews();
if (state.token) loadProjects();
