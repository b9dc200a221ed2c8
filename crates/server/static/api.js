// Shared helpers of the Kavling pages: same-origin API calls with problem+json errors, rupiah
// formatting, the status vocabulary, and a tiny DOM builder that only ever sets text.

/** Status vocabulary of the contract, with the terms of the Indonesian back office. */
export const STATUSES = [
  { key: 'AVAILABLE', label: 'Tersedia', en: 'Available', color: '#22c55e' },
  { key: 'BOOKED', label: 'Dipesan', en: 'Booked', color: '#eab308' },
  { key: 'SOLD', label: 'Terjual', en: 'Sold', color: '#ef4444' },
  { key: 'MAINTENANCE', label: 'Maintenance', en: 'Maintenance', color: '#9ca3af' },
];

/** The vocabulary entry of a status (unknown statuses get a neutral entry). */
export function statusInfo(key) {
  return STATUSES.find((s) => s.key === key) || { key, label: key, en: key, color: '#64748b' };
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * Parses the (server-sanitized) SVG text with DOMParser and imports the element tree (text is
 * never assigned as HTML); nothing in it runs. With `cssomStyles`, each `style` attribute is
 * renamed before parsing and its declarations set through CSSOM after import, which a page whose
 * CSP forbids inline style attributes (the admin console) still allows; the live page's CSP lets
 * the attributes apply as they are.
 */
export function importSvg(text, { cssomStyles = false } = {}) {
  // A DOMParser document takes the page's CSP, so style attributes must be renamed before
  // parsing. The text is the server's canonical sanitizer output: attributes are `name="value"`.
  const source = cssomStyles ? text.replace(/(<[^<>]*?\s)style="/g, '$1data-kv-style="') : text;
  const doc = new DOMParser().parseFromString(source, 'image/svg+xml');
  const root = doc.documentElement;
  if (doc.getElementsByTagName('parsererror').length > 0 || root.localName !== 'svg'
      || root.namespaceURI !== SVG_NS) {
    throw new Error('the siteplan could not be read');
  }
  const svg = document.importNode(root, true);
  for (const el of [svg, ...svg.querySelectorAll('[data-kv-style]')]) {
    const style = el.getAttribute('data-kv-style');
    if (style === null) continue;
    el.removeAttribute('data-kv-style');
    for (const decl of style.split(';')) {
      const colon = decl.indexOf(':');
      if (colon > 0) el.style.setProperty(decl.slice(0, colon).trim(), decl.slice(colon + 1).trim());
    }
  }
  // Scale to the card: keep the drawing's coordinate system, drop its fixed size.
  const w = parseFloat(svg.getAttribute('width') || '');
  const ht = parseFloat(svg.getAttribute('height') || '');
  if (!svg.hasAttribute('viewBox') && w > 0 && ht > 0) svg.setAttribute('viewBox', `0 0 ${w} ${ht}`);
  svg.removeAttribute('width');
  svg.removeAttribute('height');
  svg.setAttribute('class', 'siteplan');
  svg.setAttribute('role', 'group');
  return svg;
}

/** An API failure, carrying the problem+json body when there is one. */
export class ApiError extends Error {
  constructor(status, problem, text) {
    const detail = problem && (problem.detail || problem.title);
    super(detail || `HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ''}`);
    this.status = status;
    this.code = problem && problem.code;
    this.errors = (problem && Array.isArray(problem.errors) && problem.errors) || [];
  }

  /** The detail plus each field error, for showing to a person. */
  describe() {
    const fields = this.errors.map((e) => `${e.field}: ${e.message}`);
    return [this.message, ...fields].join(' · ');
  }
}

/**
 * Calls `/api/v1<path>`. `json` is sent as JSON; `body` as is (with its own Content-Type header).
 * Resolves to the parsed JSON (or null), rejects with an ApiError.
 */
export async function api(path, { method = 'GET', token, json, body, headers = {} } = {}) {
  const h = { Accept: 'application/json, application/problem+json', ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  let payload = body;
  if (json !== undefined) {
    h['Content-Type'] = 'application/json';
    payload = JSON.stringify(json);
  }
  let res;
  try {
    res = await fetch(`/api/v1${path}`, { method, headers: h, body: payload, credentials: 'omit' });
  } catch (e) {
    throw new ApiError(0, { detail: `the server cannot be reached (${e.message})` }, '');
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) throw new ApiError(res.status, data, data ? '' : text);
  return data;
}

/** Every item of a list endpoint, page by page (pageSize 100, the contract's maximum). */
export async function fetchAll(path, options = {}) {
  const sep = path.includes('?') ? '&' : '?';
  const items = [];
  for (let page = 1; page <= 1000; page += 1) {
    const res = await api(`${path}${sep}pagination[pageSize]=100&pagination[page]=${page}`, options);
    items.push(...res.data);
    const p = res.meta && res.meta.pagination;
    if (!p || page >= p.pageCount || res.data.length === 0) break;
  }
  return items;
}

/** `450000000` → `Rp 450.000.000` (integer rupiah, Indonesian digit grouping). */
export function formatRupiah(amount) {
  if (typeof amount !== 'number' || !Number.isFinite(amount)) return '–';
  const digits = String(Math.trunc(Math.abs(amount))).replace(/\B(?=(\d{3})+(?!\d))/g, '.');
  return `${amount < 0 ? '-' : ''}Rp ${digits}`;
}

/** `84` → `84 m²`, or a dash. */
export function formatArea(n) {
  return typeof n === 'number' ? `${String(n).replace('.', ',')} m²` : '–';
}

/** An RFC 3339 time in the reader's locale, Jakarta time by default. */
export function formatTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '–';
  return d.toLocaleString('id-ID', { dateStyle: 'medium', timeStyle: 'short' });
}

/**
 * Builds an element: `h('p', { class: 'x' }, 'text', child)`. Children are nodes or text (never
 * parsed as HTML); attributes whose value is null/false are left out.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** A small coloured square with the status label next to it (so colour is never the only cue). */
export function statusBadge(key) {
  const s = statusInfo(key);
  return h('span', { class: 'badge', dataset: { status: s.key } },
    h('span', { class: 'swatch', 'aria-hidden': 'true', dataset: { status: s.key } }), s.label);
}
