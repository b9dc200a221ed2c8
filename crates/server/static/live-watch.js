// The signed-in buyer's part of the live page: sign in, watch the selected unit (or stop), and a
// notification badge fed by the user's own channel `user:<id>` on a second socket (with the token;
// the project socket stays anonymous). The channel resumes with `since` after a drop, like the
// project channel; the badge is the unread count, and opening the list marks everything read.
import { api, ApiError, h } from './api.js';

const TOKEN_KEY = 'kavling.buyer.token';
const USER_KEY = 'kavling.buyer.user';
const MAX_BACKOFF_MS = 30000;
const LIST_SIZE = 10;

const $ = (id) => document.getElementById(id);

const w = {
  token: sessionStorage.getItem(TOKEN_KEY),
  user: JSON.parse(sessionStorage.getItem(USER_KEY) || 'null'),
  /** unitId → watch id, for the units this user watches. */
  watched: new Map(),
  selected: null,
  /** Last notification seq applied on the user channel. */
  seq: 0,
  unread: 0,
  notes: [],
  socket: null,
  attempt: 0,
  timer: 0,
};

function authed(path, options = {}) {
  return api(path, { ...options, token: w.token });
}

function setUnread(n) {
  w.unread = Math.max(0, n);
  $('kv-badge').textContent = String(w.unread);
  $('kv-badge').hidden = w.unread === 0;
  document.body.dataset.unread = String(w.unread);
}

function renderNotes() {
  $('kv-notes').replaceChildren(...w.notes.slice(0, LIST_SIZE).map((n) => h('li', { dataset: { kind: n.kind, seq: String(n.seq) } },
    h('strong', {}, n.title), h('span', { class: 'muted small' }, n.body))));
}

function renderAccount() {
  const signedIn = Boolean(w.token && w.user);
  $('kv-signin').hidden = signedIn;
  $('kv-me').hidden = !signedIn;
  if (signedIn) $('kv-me-name').textContent = w.user.fullName || w.user.email;
  renderWatch();
}

function renderWatch() {
  const box = $('kv-watch');
  if (!w.selected) {
    box.replaceChildren();
    return;
  }
  if (!w.token) {
    box.replaceChildren(h('p', { class: 'muted small' }, 'Masuk sebagai pembeli untuk memantau unit ini.'));
    return;
  }
  const watching = w.watched.has(w.selected);
  const button = h('button', { type: 'button', id: 'kv-watch-button', class: watching ? 'secondary' : '' },
    watching ? 'Berhenti memantau' : 'Pantau unit ini');
  button.dataset.watching = String(watching);
  button.addEventListener('click', () => toggleWatch(button));
  box.replaceChildren(button, h('p', { class: 'muted small' },
    watching ? 'Anda akan diberi tahu saat unit ini tersedia atau harganya turun.' : ''));
}

async function toggleWatch(button) {
  const unitId = w.selected;
  button.disabled = true;
  try {
    if (w.watched.has(unitId)) {
      await authed(`/me/watches/${w.watched.get(unitId)}`, { method: 'DELETE' });
      w.watched.delete(unitId);
    } else {
      const watch = await authed('/me/watches', { method: 'POST', json: { unitId } });
      w.watched.set(unitId, watch.id);
    }
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) signOut();
    else console.warn('watch failed', e);
  }
  renderWatch();
}

// ---------------------------------------------------------------- the user channel

function channel() {
  return `user:${w.user.id}`;
}

function handle(msg) {
  if (msg.channel !== channel()) return;
  if (msg.type === 'notification') {
    if (msg.seq <= w.seq) return; // already shown
    if (msg.seq > w.seq + 1) {
      // A gap: ask again from what we have (the server replays the rest).
      w.socket.send(JSON.stringify({ op: 'subscribe', channel: channel(), since: w.seq }));
      return;
    }
    w.seq = msg.seq;
    w.notes.unshift(msg);
    renderNotes();
    if (!msg.readAt) setUnread(w.unread + 1);
  } else if (msg.type === 'subscribed') {
    w.attempt = 0;
    document.body.dataset.userLive = 'true';
    if (!msg.recovered && msg.seq > w.seq) loadInbox();
  } else if (msg.type === 'error' && msg.code === 'forbidden') {
    signOut();
  }
}

function connect() {
  clearTimeout(w.timer);
  if (!w.token) return;
  const url = new URL('/ws', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  url.searchParams.set('token', w.token);
  const ws = new WebSocket(url.href);
  w.socket = ws;
  ws.addEventListener('open', () => ws.send(JSON.stringify({ op: 'subscribe', channel: channel(), since: w.seq })));
  ws.addEventListener('message', (ev) => {
    if (ws !== w.socket) return;
    try {
      handle(JSON.parse(ev.data));
    } catch {
      // not JSON: ignore
    }
  });
  ws.addEventListener('close', () => {
    if (ws !== w.socket) return;
    w.socket = null;
    document.body.dataset.userLive = 'false';
    if (!w.token) return;
    const ceiling = Math.min(MAX_BACKOFF_MS, 500 * 2 ** w.attempt);
    w.attempt += 1;
    w.timer = setTimeout(connect, Math.round(ceiling / 2 + Math.random() * (ceiling / 2)));
  });
}

// ---------------------------------------------------------------- session

async function loadInbox() {
  const [latest, unread] = await Promise.all([
    authed(`/me/notifications?pagination[pageSize]=${LIST_SIZE}`),
    authed('/me/notifications?filters[readAt][$null]=true&pagination[pageSize]=1'),
  ]);
  w.notes = latest.data;
  w.seq = Math.max(w.seq, ...latest.data.map((n) => n.seq), 0);
  renderNotes();
  setUnread(unread.meta.pagination.total);
}

async function startSession() {
  try {
    const watches = await authed('/me/watches?pagination[pageSize]=100');
    w.watched = new Map(watches.data.filter((x) => x.unitId).map((x) => [x.unitId, x.id]));
    await loadInbox();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      signOut();
      return;
    }
    console.warn('loading the inbox failed', e);
  }
  renderAccount();
  connect();
}

function signOut() {
  w.token = null;
  w.user = null;
  w.watched.clear();
  w.notes = [];
  w.seq = 0;
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(USER_KEY);
  if (w.socket) w.socket.close(1000, 'signed out');
  setUnread(0);
  renderNotes();
  renderAccount();
}

async function signIn(ev) {
  ev.preventDefault();
  const form = ev.target;
  const error = $('kv-signin-error');
  error.textContent = '';
  try {
    const res = await api('/auth/login', { method: 'POST', json: { email: form.email.value, password: form.password.value } });
    w.token = res.token;
    w.user = res.user;
    sessionStorage.setItem(TOKEN_KEY, res.token);
    sessionStorage.setItem(USER_KEY, JSON.stringify(res.user));
    form.reset();
    await startSession();
  } catch (e) {
    error.textContent = e instanceof ApiError ? e.describe() : String(e);
  }
}

async function openNotes() {
  const list = $('kv-notes-panel');
  list.hidden = !list.hidden;
  if (!list.hidden && w.unread > 0) {
    try {
      await authed('/me/notifications/read', { method: 'POST', json: { upTo: w.seq } });
      setUnread(0);
    } catch (e) {
      console.warn('marking read failed', e);
    }
  }
}

document.addEventListener('kv-select', (ev) => {
  w.selected = ev.detail.unitId;
  renderWatch();
});
$('kv-signin').addEventListener('submit', signIn);
$('kv-signout').addEventListener('click', signOut);
$('kv-bell').addEventListener('click', openNotes);
setUnread(0);
renderAccount();
if (w.token && w.user) startSession();
