// The chat page (/chat): a signed-in buyer or marketing user lists their conversations, opens one,
// reads its history over REST and follows `conversation:<id>` over /ws (resuming with `since`
// after a drop), and sends messages with a clientMessageId so a retried send never doubles.
// Message text is user content: it is only ever set as text (textContent), never parsed as HTML.
// The token lives in sessionStorage only (gone when the tab closes).
import { api, fetchAll, formatTime, h } from './api.js';

const TOKEN_KEY = 'kv-chat-token';
const USER_KEY = 'kv-chat-user';
const $ = (id) => document.getElementById(id);

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  user: JSON.parse(sessionStorage.getItem(USER_KEY) || 'null'),
  conversations: [],
  current: null,
  /** Highest seq shown for the open conversation. */
  seq: 0,
  socket: null,
  reconnectTimer: 0,
  attempts: 0,
  /** The clientMessageId of the text being sent, kept until the server has it. */
  pending: null,
};

function notice(id, kind, text) {
  const el = $(id);
  el.textContent = text || '';
  el.className = `notice ${kind}`;
  el.hidden = !text;
}

function setConn(kind, text) {
  $('kv-chat-conn').dataset.state = kind;
  $('kv-chat-conn-text').textContent = text;
}

function showSignedIn() {
  const signedIn = Boolean(state.token);
  $('kv-login-view').hidden = signedIn;
  $('kv-app-view').hidden = !signedIn;
  $('kv-whoami').hidden = !signedIn;
  $('kv-user').textContent = state.user ? `${state.user.fullName} (${state.user.role})` : '';
}

function signOut(message) {
  state.token = null;
  state.user = null;
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(USER_KEY);
  if (state.socket) state.socket.close();
  showSignedIn();
  notice('kv-login-msg', 'error', message || '');
}

/** The other party's name in a conversation. */
function otherName(c) {
  return state.user && c.buyerId === state.user.id ? c.marketingName : c.buyerName;
}

async function loadConversations() {
  state.conversations = await fetchAll('/conversations?sort=createdAt:desc', { token: state.token });
  const list = $('kv-conversations');
  list.replaceChildren(...state.conversations.map((c) => h('li', { dataset: { conversationId: c.id } },
    h('button', { type: 'button', class: 'secondary', onclick: () => openConversation(c.id) },
      h('strong', {}, otherName(c)), ' ',
      h('span', { class: 'muted small' }, c.blockNumber ? `Unit ${c.blockNumber}` : '')))));
  $('kv-conversations-empty').hidden = state.conversations.length > 0;
}

/** Appends a message unless it is already shown (by seq); history and live frames share this. */
function showMessage(m) {
  if (m.seq <= state.seq) return;
  state.seq = m.seq;
  const mine = state.user && m.senderId === state.user.id;
  const li = h('li', { class: mine ? 'message mine' : 'message', dataset: { seq: m.seq, id: m.id } },
    h('span', { class: 'text' }, m.text),
    h('span', { class: 'meta muted small' }, formatTime(m.createdAt)));
  $('kv-messages').append(li);
  li.scrollIntoView({ block: 'end' });
}

/** Reads the messages after the shown seq from REST (history, or a gap the socket left). */
async function readAfter(id) {
  const items = await fetchAll(`/conversations/${id}/messages?sort=seq:asc&filters[seq][$gt]=${state.seq}`,
    { token: state.token });
  if (state.current !== id) return;
  for (const m of items) showMessage(m);
}

async function openConversation(id) {
  const c = state.conversations.find((x) => x.id === id);
  if (!c) return;
  if (state.current && state.socket && state.socket.readyState === WebSocket.OPEN) {
    state.socket.send(JSON.stringify({ op: 'unsubscribe', channel: `conversation:${state.current}` }));
  }
  state.current = id;
  state.seq = 0;
  state.pending = null;
  $('kv-chat-title').textContent = `${otherName(c)}${c.blockNumber ? ` · Unit ${c.blockNumber}` : ''}`;
  $('kv-messages').replaceChildren();
  $('kv-send-form').hidden = false;
  for (const li of $('kv-conversations').children) {
    li.classList.toggle('active', li.dataset.conversationId === id);
  }
  try {
    await readAfter(id);
  } catch (e) {
    notice('kv-send-msg', 'error', e.describe ? e.describe() : e.message);
  }
  subscribe();
}

function subscribe() {
  if (!state.current || !state.socket || state.socket.readyState !== WebSocket.OPEN) return;
  state.socket.send(JSON.stringify({ op: 'subscribe', channel: `conversation:${state.current}`, since: state.seq }));
}

function onFrame(frame) {
  const channel = state.current && `conversation:${state.current}`;
  if (frame.channel !== channel) return;
  if (frame.type === 'message') {
    if (frame.seq > state.seq + 1) {
      // A gap: read what is missing from REST, which also shows this one.
      readAfter(state.current).catch(() => {});
      return;
    }
    showMessage(frame);
  } else if (frame.type === 'subscribed') {
    setConn('live', 'Terhubung');
    state.attempts = 0;
    // Further behind than the server replays: read the rest over REST.
    if (!frame.recovered && frame.seq > state.seq) readAfter(state.current).catch(() => {});
  } else if (frame.type === 'error') {
    setConn('error', frame.code === 'forbidden' ? 'Tidak diizinkan' : 'Gangguan, mencoba lagi…');
    if (frame.code === 'unavailable') scheduleReconnect();
  }
}

function scheduleReconnect() {
  if (!state.token) return;
  const delay = Math.min(30000, 500 * 2 ** Math.min(state.attempts, 6)) * (0.5 + Math.random() / 2);
  state.attempts += 1;
  clearTimeout(state.reconnectTimer);
  state.reconnectTimer = setTimeout(connect, delay);
}

function connect() {
  if (!state.token) return;
  setConn('connecting', 'Menghubungkan…');
  const url = new URL('/ws', location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.searchParams.set('token', state.token);
  const ws = new WebSocket(url.href);
  state.socket = ws;
  ws.addEventListener('open', () => subscribe());
  ws.addEventListener('message', (ev) => {
    let frame;
    try {
      frame = JSON.parse(ev.data);
    } catch {
      return;
    }
    onFrame(frame);
  });
  ws.addEventListener('close', () => {
    if (state.socket !== ws) return;
    setConn('connecting', 'Terputus, menghubungkan ulang…');
    scheduleReconnect();
  });
}

async function send(ev) {
  ev.preventDefault();
  const text = $('kv-send-text').value;
  if (!state.current || text.length === 0) return;
  // One id per typed text: a retry after an error or a timeout sends the same id again.
  if (!state.pending || state.pending.text !== text) state.pending = { text, id: crypto.randomUUID() };
  const id = state.current;
  const button = $('kv-send-form').querySelector('button');
  button.disabled = true;
  try {
    const m = await api(`/conversations/${id}/messages`, {
      method: 'POST', token: state.token, json: { text, clientMessageId: state.pending.id },
    });
    state.pending = null;
    $('kv-send-text').value = '';
    notice('kv-send-msg', 'ok', '');
    if (state.current === id && m.seq === state.seq + 1) showMessage(m);
    else if (state.current === id && m.seq > state.seq) await readAfter(id);
  } catch (e) {
    if (e.status === 401) signOut('Sesi berakhir; silakan masuk lagi.');
    else if (e.code === 'rate_limited') notice('kv-send-msg', 'error', `Terlalu banyak pesan. ${e.message}`);
    else notice('kv-send-msg', 'error', e.describe ? e.describe() : e.message);
  } finally {
    button.disabled = false;
  }
}

$('kv-login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  notice('kv-login-msg', 'error', '');
  try {
    const res = await api('/auth/login', {
      method: 'POST',
      json: { email: $('kv-login-email').value.trim(), password: $('kv-login-password').value },
    });
    state.token = res.token;
    state.user = res.user;
    sessionStorage.setItem(TOKEN_KEY, res.token);
    sessionStorage.setItem(USER_KEY, JSON.stringify(res.user));
    $('kv-login-password').value = '';
    await start();
  } catch (e) {
    notice('kv-login-msg', 'error', e.describe ? e.describe() : e.message);
  }
});
$('kv-logout').addEventListener('click', () => signOut(''));
$('kv-send-form').addEventListener('submit', send);
$('kv-send-text').addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && !ev.shiftKey) {
    ev.preventDefault();
    $('kv-send-form').requestSubmit();
  }
});

async function start() {
  showSignedIn();
  if (!state.token) return;
  try {
    await loadConversations();
  } catch (e) {
    if (e.status === 401) {
      signOut('Sesi berakhir; silakan masuk lagi.');
      return;
    }
    notice('kv-send-msg', 'error', e.describe ? e.describe() : e.message);
  }
  connect();
}

start();
