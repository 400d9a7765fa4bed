// app.js: the chat page. State lives in chat-client.js (connection, cursors,
// outbox); this file turns its events into the DOM and the user's actions
// into calls. Rooms are kept per name in localStorage, with the last seq
// read in each (unread counts survive a reload).
import { ChatClient, ROOM_RE, NAME_RE } from './chat-client.js';
import { h, avatar, messageEl, setState, insertBySeq, relabelDays, applyChange, plain } from './view.js';

// An engine that parses these modules but lacks a DOM method the page calls
// (Element.replaceChildren: Chrome 86, Firefox 78, Safari 14) stops here,
// before anything is set up, and gets chat-es5.js instead. Otherwise this
// module runs: legacy.js, which runs next, does not load chat-es5.js.
if (typeof Element.prototype.replaceChildren !== 'function' || typeof String.prototype.matchAll !== 'function' ||
    typeof AbortController !== 'function') {
  throw new Error('chat: this browser is too old for app.js; legacy.js loads chat-es5.js');
}
window.chatModule = 'module';

const $ = (id) => document.getElementById(id);
const DEFAULT_MAX_TEXT = 4096; // bytes, until the server tells its $chat_max_text
const TYPING_SHOWN_MS = 6000;
const NEAR_BOTTOM = 48; // px: a reader this close to the end follows new messages
const MAX_ROOMS = 20; // a long-poll carries at most 20 rooms

const store = {
  get(key, fallback = null) {
    try { return JSON.parse(localStorage.getItem(`chat.${key}`)) ?? fallback; } catch { return fallback; }
  },
  set(key, value) {
    try { localStorage.setItem(`chat.${key}`, JSON.stringify(value)); } catch { /* private mode */ }
  },
  del(key) { try { localStorage.removeItem(`chat.${key}`); } catch { /* ignore */ } },
};

const params = new URLSearchParams(location.search);
const TRANSPORTS = { websocket: ['websocket'], sse: ['sse'], longpoll: ['longpoll'] }[params.get('transport')];

let chat = null;
let me = { name: null, user: null };
const rooms = new Map(); // room -> view state, see makeRoom()
let active = null;
let provisional = false; // the rooms are the default, until the server names the first room
let asked = ''; // the room the page was opened on (#room), if any

// The room in the URL's fragment, or '' (a malformed escape is no room, not an error).
function hashRoom() {
  try { return decodeURIComponent(location.hash.slice(1)); } catch { return ''; }
}

// The location's policy as the server told it (hello, or the first poll).
function maxText() { return chat?.policy?.max_text || DEFAULT_MAX_TEXT; }
function readOnly() { return chat?.policy?.readonly === true; }

// ---- start: a name, or the user nginx signed in ------------------------------------

// With no name stored, ask the server whether nginx signed us in: a poll
// without a name that does not answer 400 ("a guest needs a name") comes
// from a signed-in user (401: guests are not allowed, and we are not one).
async function whoami() {
  try {
    const res = await fetch('poll?timeout=0', { cache: 'no-store', headers: { accept: 'application/json', 'x-chat-request': '1' } });
    if (res.status === 200) return 'signed-in';
    if (res.status === 401) return 'unauthorized';
  } catch { /* the server is not there: a guest can still pick a name */ }
  return 'guest';
}

function showLogin(message = '', form = true) {
  $('app').hidden = true;
  $('login').hidden = false;
  const input = $('login-name');
  input.value = store.get('name') || '';
  $('login-error').textContent = message;
  for (const el of $('login-form').querySelectorAll('label, input, button, #login-hint, p:not(.error)')) el.hidden = !form;
  if (form) input.focus();
}

$('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const name = $('login-name').value.trim();
  if (!NAME_RE.test(name)) {
    $('login-error').textContent = 'Use 1–32 letters, digits, dots, dashes or underscores.';
    return;
  }
  store.set('name', name);
  $('login').hidden = true;
  start(name);
});

async function boot() {
  const name = store.get('name');
  if (name && NAME_RE.test(name)) { start(name); return; } // the server still has the last word: hello
  const who = await whoami();
  if (who === 'signed-in') start(null);
  else if (who === 'unauthorized') showLogin('This chat is for signed-in users only: sign in first.', false);
  else showLogin();
}

// Rooms and read positions are kept per guest name ("@" for a signed-in user).
function roomsKey() { return `rooms.${me.name || '@'}`; }
function readKey() { return `read.${me.name || '@'}`; }

function start(name) {
  me = { name, user: null };
  $('app').hidden = false;
  $('login').hidden = true;
  chat = new ChatClient({ name, transports: TRANSPORTS });
  window.chat = chat; // for the curious, and for the tests
  chat.on('state', renderConn);
  chat.on('joined', onJoined);
  chat.on('message', onMessage);
  chat.on('ack', onAck);
  chat.on('failed', onFailed);
  chat.on('presence', onPresence);
  chat.on('typing', onTyping);
  chat.on('gap', onGap);
  chat.on('reset', onReset);
  chat.on('error', onError);
  chat.on('hello', onHello);
  renderMe();
  const kept = store.get(roomsKey(), []);
  const saved = (Array.isArray(kept) ? kept : []).filter((r) => ROOM_RE.test(r)).slice(0, MAX_ROOMS - 1);
  const wanted = hashRoom();
  asked = wanted;
  // nothing saved, no room asked for: lobby until the server names the first room
  provisional = saved.length === 0 && !ROOM_RE.test(wanted);
  for (const r of saved.length ? saved : ['lobby']) addRoom(r);
  if (ROOM_RE.test(wanted)) addRoom(wanted);
  chat.connect();
  switchTo(ROOM_RE.test(wanted) ? wanted : [...rooms.keys()][0]);
  renderConn({ state: chat.state, transport: chat.transport });
}

// What the server says first (hello on WebSocket, the first poll's answer
// otherwise): who we are and the location's policy. Rooms the site does not
// allow are dropped before they are joined (a nginx $chat_rooms without
// lobby greets no one with an error), the first room is the server's, and
// a read-only location has no composer.
function onHello({ user, policy }) {
  if (user && user !== me.user) {
    me.user = user;
    renderMe();
  }
  if (!policy) return;
  const first = ROOM_RE.test(policy.first_room) ? policy.first_room : null;
  const wrong = [...rooms.keys()].filter((r) => !chat.allowed(r) || (provisional && r !== first));
  provisional = false;
  if (first && wrong.length === rooms.size) addRoom(first);
  for (const r of wrong) {
    // the room of a link the site does not open says why; the others go quietly
    if (r === asked && !chat.allowed(r)) toast(`Cannot join #${r}: not allowed here`);
    if (rooms.size > 1) removeRoom(r);
  }
  if (!active || !rooms.has(active.name)) switchTo([...rooms.keys()][0]);
  renderComposer();
}

function renderComposer() {
  const ro = readOnly();
  $('composer').hidden = ro;
  $('readonly-note').hidden = !ro;
  checkLength();
}

// ---- rooms ----------------------------------------------------------------------

function makeRoom(name) {
  const list = h('ol', { class: 'messages' });
  const outbox = h('ol', { class: 'messages outbox' });
  const top = h('div', { class: 'log-top' });
  return {
    name,
    view: h('div', { class: 'room-view' }, top, list, outbox),
    top, list, outbox,
    bySeq: new Map(),
    pending: new Map(), // cid -> element in outbox
    oldest: null,
    newest: 0,
    joined: false,
    head: 0, // the room's last seq when we joined: the backlog ends there
    start: false, // the first message is on screen
    loading: false,
    lastRead: store.get(readKey(), {})[name] ?? null, // null: never opened, nothing is unread yet
    unread: 0,
    below: 0, // new messages under a reader who scrolled up
    stuck: true, // follows new messages
    scrollTop: 0,
    members: [],
    count: 0,
    typers: new Map(), // user -> timer
  };
}

function addRoom(name) {
  if (rooms.has(name)) return rooms.get(name);
  const r = makeRoom(name);
  rooms.set(name, r);
  renderTop(r);
  if (chat) chat.join(name);
  saveRooms();
  renderRooms();
  return r;
}

function removeRoom(name) {
  const r = rooms.get(name);
  if (!r || rooms.size === 1) return;
  chat.leave(name);
  rooms.delete(name);
  saveRooms();
  if (active === r) switchTo([...rooms.keys()][0]);
  renderRooms();
}

function saveRooms() { store.set(roomsKey(), [...rooms.keys()]); }

function switchTo(name) {
  const r = rooms.get(name) || addRoom(name);
  const log = $('log');
  if (active && active !== r) {
    active.stuck = nearBottom();
    active.scrollTop = log.scrollTop;
  }
  active = r;
  chat?.focus(name); // the member list shown: the one kept fresh in a busy room
  if (location.hash.slice(1) !== name) history.replaceState(null, '', `#${name}`);
  log.replaceChildren(r.view);
  if (r.stuck) scrollToBottom(); else log.scrollTop = r.scrollTop;
  $('room-name').textContent = `#${name}`;
  closeSearch();
  $('search-input').value = '';
  $('search-input').placeholder = `Search #${name}`;
  $('input').placeholder = `Message #${name}`;
  $('input').setAttribute('aria-label', `Message #${name}`);
  renderRooms();
  renderMembers();
  renderTyping();
  renderJump();
  markRead();
  document.body.classList.remove('show-rooms', 'show-members');
  $('rooms-toggle').setAttribute('aria-expanded', 'false');
  maybeLoadOlder();
}

window.addEventListener('hashchange', () => {
  const name = hashRoom();
  if (chat && ROOM_RE.test(name) && (!active || name !== active.name)) switchTo(name);
});

$('search-form').addEventListener('submit', (e) => {
  e.preventDefault();
  runSearch($('search-input').value);
});
$('search-close').addEventListener('click', () => { $('search-input').value = ''; closeSearch(); });

$('join-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = $('join-input');
  const name = input.value.trim().toLowerCase().replace(/^#/, '').replace(/\s+/g, '-');
  if (!ROOM_RE.test(name)) {
    $('join-error').textContent = 'Room names: a–z, 0–9, - and _, starting with a letter or digit.';
    input.focus();
    return;
  }
  if (!rooms.has(name) && rooms.size >= MAX_ROOMS) {
    $('join-error').textContent = `You can be in ${MAX_ROOMS} rooms at most: leave one first.`;
    return;
  }
  if (!chat.allowed(name)) {
    $('join-error').textContent = `#${name} is not open on this site.`;
    return;
  }
  $('join-error').textContent = '';
  input.value = '';
  switchTo(name);
  $('input').focus();
});

function renderRooms() {
  const ul = $('room-list');
  ul.replaceChildren(...[...rooms.values()].map((r) => {
    const current = r === active;
    const badge = r.unread ? h('span', { class: 'badge', text: r.unread > 99 ? '99+' : String(r.unread) }) : null;
    const label = `${r.name}${r.unread ? `, ${r.unread} unread` : ''}`;
    return h('li', { class: current ? 'current' : '' },
      h('a', { href: `#${r.name}`, class: 'room', 'aria-current': current ? 'page' : null, 'aria-label': label },
        h('span', { class: 'hash', 'aria-hidden': 'true', text: '#' }),
        h('span', { class: 'room-label', text: r.name }), badge),
      rooms.size > 1 ? h('button', {
        type: 'button', class: 'leave', title: `Leave #${r.name}`, 'aria-label': `Leave #${r.name}`,
        text: '×', onclick: () => removeRoom(r.name),
      }) : null);
  }));
  const total = [...rooms.values()].reduce((n, r) => n + r.unread, 0);
  document.title = `${total ? `(${total}) ` : ''}${active ? `#${active.name} · ` : ''}Chat`;
  $('rooms-badge').hidden = total === 0;
}

// ---- scrolling, reading, history --------------------------------------------------

function nearBottom() {
  const log = $('log');
  return log.scrollHeight - log.scrollTop - log.clientHeight <= NEAR_BOTTOM;
}

function scrollToBottom() {
  const log = $('log');
  log.scrollTop = log.scrollHeight;
}

function markRead() {
  const r = active;
  if (!r || document.visibilityState !== 'visible' || !nearBottom()) return;
  r.below = 0;
  renderJump();
  if (r.lastRead === null || r.newest > r.lastRead || r.unread) {
    saveRead(r, Math.max(r.lastRead ?? 0, r.newest));
    r.unread = 0;
    renderRooms();
  }
}

function saveRead(r, seq) {
  r.lastRead = seq;
  const read = store.get(readKey(), {});
  read[r.name] = seq;
  store.set(readKey(), read);
}

function renderJump() {
  const btn = $('jump');
  const n = active ? active.below : 0;
  btn.hidden = n === 0;
  btn.textContent = n === 1 ? '1 new message ↓' : `${n} new messages ↓`;
}

$('jump').addEventListener('click', () => { scrollToBottom(); markRead(); });
$('log').addEventListener('scroll', () => {
  if (!active) return;
  active.stuck = nearBottom();
  if (active.stuck) markRead();
  if ($('log').scrollTop < 300) maybeLoadOlder();
}, { passive: true });
document.addEventListener('visibilitychange', markRead);

function renderTop(r) {
  r.top.replaceChildren();
  if (r.start && r.removed) {
    r.top.append(h('p', { class: 'start' }, h('strong', { text: `#${r.name}` }),
      ' — older messages were removed by the site\'s retention policy.'));
  } else if (r.start) {
    r.top.append(h('p', { class: 'start' }, h('strong', { text: `#${r.name}` }),
      ' — this is the beginning of the room.'));
  } else if (r.loading || !r.joined) {
    r.top.append(h('p', { class: 'loading', text: 'Loading messages…' }));
  } else {
    r.top.append(h('button', { type: 'button', class: 'link', text: 'Load older messages', onclick: () => loadOlder(r) }));
  }
}

function maybeLoadOlder() {
  const r = active;
  if (!r || !r.joined || r.start || r.loading || r.newest < r.head) return;
  const log = $('log');
  if (log.scrollTop < 300 || log.scrollHeight <= log.clientHeight + 300) loadOlder(r);
}

async function loadOlder(r) {
  if (r.loading || r.start) return;
  if (r.oldest === null) {
    if (r.newest === 0) { r.start = true; renderTop(r); }
    return;
  }
  if (r.oldest <= 1) { r.start = true; renderTop(r); return; }
  r.loading = true;
  renderTop(r);
  const log = $('log');
  let msgs = [];
  try {
    msgs = await chat.history(r.name, { before: r.oldest, limit: 50 });
  } catch (err) {
    r.loading = false;
    renderTop(r);
    return; // the button stays; scrolling tries again
  }
  r.loading = false;
  if (!rooms.has(r.name)) return;
  const keepFromBottom = log.scrollHeight - log.scrollTop;
  log.setAttribute('aria-busy', 'true');
  for (const m of msgs) showMessage(r, m, { older: true });
  if (msgs.length === 0 || msgs[0].seq <= 1 || msgs.horizon !== undefined) r.start = true;
  if (msgs.horizon !== undefined) r.removed = true;
  renderTop(r);
  if (active === r) log.scrollTop = log.scrollHeight - keepFromBottom; // the reader's place stays put
  log.removeAttribute('aria-busy');
  if (active === r && !r.start) requestAnimationFrame(maybeLoadOlder);
}

// ---- messages ---------------------------------------------------------------------

// Until the server names us (long-poll never says hello), a guest is "~name".
function myName() { return me.user || (me.name ? `~${me.name}` : null); }
function isMine(m) { return m.mine || (myName() !== null && m.user === myName()); }

function showMessage(r, m, { older = false, state } = {}) {
  if (m.edit !== undefined || m.delete !== undefined) {
    // a change is no bubble of its own: it updates the message it names
    // (history shows that message as it is now anyway)
    if (!older && m.seq > r.newest) r.newest = m.seq;
    const target = r.bySeq.get(m.edit ?? m.delete);
    if (target) {
      applyChange(target, m);
      if (m.delete !== undefined) target.querySelector('.actions')?.remove();
    }
    return null;
  }
  if (r.bySeq.has(m.seq)) return null;
  const mine = isMine(m);
  const el = messageEl(m, { mine, state: state ?? (mine ? 'sent' : '') });
  if (mine && typeof m.seq === 'number' && !m.deleted && !readOnly()) addActions(r, el);
  else if (!mine && chat.role === 'moderator' && typeof m.seq === 'number' && !m.deleted) addModActions(r, el);
  const isActive = r === active;
  const follow = isActive && !older && nearBottom();
  insertBySeq(r.list, el);
  r.bySeq.set(m.seq, el);
  if (r.oldest === null || m.seq < r.oldest) r.oldest = m.seq;
  if (m.seq === 1 && !r.start) {
    r.start = true;
    renderTop(r);
  }
  if (!older && m.seq > r.newest) {
    r.newest = m.seq;
    if (!mine && r.lastRead !== null && m.seq > r.lastRead) {
      const seen = isActive && follow && document.visibilityState === 'visible';
      if (!seen) r.unread++;
      if (isActive && !follow) r.below++;
    }
  }
  if (isActive && (follow || (mine && !older))) scrollToBottom();
  return el;
}

// ---- edit, delete, search ----------------------------------------------------------

// Authors edit and delete their own messages; the server says when the
// site's window has passed (too_late) and the change arrives as an event.
function addActions(r, el) {
  el.querySelector('.bubble').append(h('div', { class: 'actions' },
    h('button', { type: 'button', class: 'link small edit-msg', text: 'Edit', onclick: () => editMsg(r, el) }), ' ',
    h('button', { type: 'button', class: 'link small delete-msg', text: 'Delete', onclick: () => deleteMsg(r, el) })));
}

// A moderator (hello's role) deletes anyone's message and bans its author.
function addModActions(r, el) {
  el.querySelector('.bubble').append(h('div', { class: 'actions' },
    h('button', { type: 'button', class: 'link small delete-msg', text: 'Delete', onclick: () => deleteMsg(r, el) }), ' ',
    h('button', { type: 'button', class: 'link small ban-user', text: `Ban ${el.dataset.user}`, onclick: () => banUser(el.dataset.user) })));
}

function banUser(user) {
  const reason = window.prompt(`Ban ${user} for a day? Reason:`, '');
  if (reason === null) return;
  chat.ban(user, { seconds: 86400, reason: cleanText(reason).slice(0, 1000) })
    .then(() => toast(`${user} is banned for a day.`), (err) => toast(`Could not ban ${user}: ${err?.message || err?.code}`));
}

function changeError(err) {
  switch (err?.code) {
    case 'too_late': return 'Too late to change this message.';
    case 'forbidden': return 'You cannot change this message.';
    case 'not_found': return 'That message is gone.';
    default: return `Could not change the message: ${err?.message || err?.code || 'error'}`;
  }
}

function editMsg(r, el) {
  const now = el.querySelector('.text').textContent;
  const text = window.prompt('Edit your message', now);
  if (text === null || cleanText(text) === '' || text === now) return;
  chat.edit(r.name, Number(el.dataset.seq), text).catch((err) => toast(changeError(err)));
}

function deleteMsg(r, el) {
  if (!window.confirm('Delete this message for everyone?')) return;
  chat.delete(r.name, Number(el.dataset.seq)).catch((err) => toast(changeError(err)));
}

async function runSearch(q) {
  const r = active;
  if (!r || q.trim() === '') return closeSearch();
  const box = $('search-results');
  box.hidden = false;
  $('search-summary').textContent = `Searching #${r.name}…`;
  $('search-list').replaceChildren();
  let msgs;
  try {
    msgs = await chat.search(r.name, q, { limit: 50 });
  } catch (err) {
    $('search-summary').textContent = `Search failed: ${err?.message || err?.code || 'error'}`;
    return;
  }
  if (r !== active) return;
  $('search-summary').textContent = msgs.length === 0 ? `No messages in #${r.name} match.`
    : `${msgs.length}${msgs.length === 50 ? '+' : ''} in #${r.name}, newest last`;
  $('search-list').replaceChildren(...msgs.map((m) => messageEl(m, { mine: isMine(m) })));
}

function closeSearch() {
  $('search-results').hidden = true;
  $('search-list').replaceChildren();
}

function onJoined({ room, seq }) {
  const r = rooms.get(room);
  if (!r) return;
  const first = !r.joined;
  r.joined = true;
  r.head = Math.max(r.head, seq);
  // A room never opened here: what was said before joining is not "unread".
  if (r.lastRead === null) saveRead(r, seq);
  if (r.newest === 0 && r.oldest === null && chat.rooms.get(room)?.seq === 0) r.start = true;
  renderTop(r);
  if (first && r === active) {
    if (r.stuck) scrollToBottom();
    requestAnimationFrame(maybeLoadOlder);
  }
  renderRooms();
}

function onMessage(m) {
  const r = rooms.get(m.room);
  if (!r) return;
  if (m.user === me.user || m.mine) me.user = me.user || m.user;
  const pending = m.cid ? r.pending.get(m.cid) : null;
  if (pending && m.mine) {
    pending.remove();
    r.pending.delete(m.cid);
  }
  clearTyper(r, m.user);
  const early = r.bySeq.get(m.seq);
  if (early && early.dataset.user !== m.user) {
    // Shown from its ack before the server named us (a signed-in user on
    // long-poll): put it in again under the name the server gave.
    early.remove();
    r.bySeq.delete(m.seq);
  }
  showMessage(r, m);
  if (r === active) {
    renderJump();
    markRead();
    // The join's backlog is in: fill the screen with older ones if it is short.
    if (m.seq === r.head) requestAnimationFrame(maybeLoadOlder);
  }
  renderRooms();
}

function onAck(a) {
  const r = rooms.get(a.room);
  if (!r) return;
  const el = r.pending.get(a.cid);
  if (el) { el.remove(); r.pending.delete(a.cid); }
  const existing = r.bySeq.get(a.seq);
  if (existing) { setState(existing, 'sent'); return; }
  // Put it in its place now; the message itself, when it comes, is this one.
  const user = myName() || 'you';
  const shown = showMessage(r, { seq: a.seq, cid: a.cid, user, text: a.text, ts: a.ts, mine: true }, { state: 'sent' });
  if (shown) shown.classList.add('mine');
}

function onFailed(f) {
  const r = rooms.get(f.room);
  const el = r?.pending.get(f.cid);
  if (el) setState(el, 'failed', reasonText(f.code, f.message));
}

function reasonText(code, message) {
  return {
    too_large: 'too long', forbidden: 'not allowed here', rate_limited: 'too fast, slow down',
    unavailable: 'the server is busy', bad_request: 'not accepted', unauthorized: 'sign in first',
  }[code] || message || code;
}

function sendText(text) {
  const r = active;
  const cid = chat.send(r.name, text);
  const el = messageEl({ cid, user: myName() || 'you', text }, { mine: true, state: 'pending' });
  r.pending.set(cid, el);
  r.outbox.append(el);
  r.stuck = true;
  scrollToBottom();
}

// Retry and Delete on a failed message (event delegation on the log).
$('log').addEventListener('click', (e) => {
  const btn = e.target.closest('button.retry, button.discard');
  if (!btn) return;
  const el = btn.closest('li.msg');
  const cid = el?.dataset.cid;
  if (!cid || !active) return;
  if (btn.classList.contains('retry')) {
    if (chat.retry(cid)) setState(el, 'pending');
  } else {
    chat.discard(cid);
    active.pending.delete(cid);
    el.remove();
  }
});

function onGap({ room }) {
  // More was missed than the server replays: start the room's view afresh
  // from here; scrolling up loads the rest as history.
  const r = rooms.get(room);
  if (!r) return;
  r.list.replaceChildren();
  r.bySeq.clear();
  r.oldest = null;
  r.start = false;
  renderTop(r);
}

function onReset({ room, seq }) {
  // The database went back in time: what is shown past seq is gone from
  // the room; the messages that follow seq now arrive as new ones.
  const r = rooms.get(room);
  if (!r) return;
  if (seq === 0) { // read afresh: the room's view starts over, as after a gap
    onGap({ room });
    r.head = 0;
    r.newest = 0;
    return;
  }
  for (const [s, el] of r.bySeq) {
    if (s > seq) {
      el.remove();
      r.bySeq.delete(s);
    }
  }
  r.head = Math.min(r.head, seq);
  if (r.newest > seq) r.newest = seq;
  renderTop(r);
  renderRooms();
}

// ---- composer -----------------------------------------------------------------------

const input = $('input');
const encoder = new TextEncoder();

function cleanText(text) {
  // The server takes no control characters but newline and tab.
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '').replace(/\s+$/, '').replace(/^\n+/, '');
}

function autosize() {
  input.style.height = 'auto';
  input.style.height = `${Math.min(input.scrollHeight, 180)}px`;
}

function checkLength() {
  const bytes = encoder.encode(input.value).length;
  const max = maxText();
  const over = bytes > max;
  $('counter').hidden = bytes < max * 0.8;
  $('counter').textContent = `${bytes} / ${max}`;
  $('counter').classList.toggle('over', over);
  $('send').disabled = over || cleanText(input.value) === '';
  return !over;
}

input.addEventListener('input', () => {
  autosize();
  checkLength();
  if (active && input.value.trim()) chat.typing(active.name);
});

input.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.altKey && !e.ctrlKey && !e.metaKey && !e.isComposing) {
    e.preventDefault();
    const form = $('composer');
    if (form.requestSubmit) form.requestSubmit(); // Safari 16+
    else form.dispatchEvent(new Event('submit', { cancelable: true }));
  }
});

$('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = cleanText(input.value);
  if (!text || !checkLength() || !active || readOnly()) return;
  sendText(text);
  input.value = '';
  autosize();
  checkLength();
  input.focus();
});

// ---- presence and typing --------------------------------------------------------------

function onPresence({ room, members, count }) {
  const r = rooms.get(room);
  if (!r) return;
  r.members = members;
  r.count = Math.max(count, members.length);
  if (r === active) renderMembers();
}

function renderMembers() {
  const r = active;
  const n = r ? r.count : 0;
  $('room-sub').textContent = n === 1 ? '1 online' : `${n} online`;
  $('member-count').textContent = String(n);
  $('members-toggle-count').textContent = String(n);
  const list = r ? [...r.members] : [];
  $('member-list').replaceChildren(...list.map((u) => h('li', { class: 'member' },
    avatar(u), h('span', { class: 'member-name', text: plain(u) }),
    u === myName() ? h('span', { class: 'you', text: '(you)' }) : null)));
  if (r && r.count > list.length) {
    $('member-list').append(h('li', { class: 'more', text: `and ${r.count - list.length} more` }));
  }
}

function onTyping({ room, user }) {
  const r = rooms.get(room);
  if (!r) return;
  clearTimeout(r.typers.get(user));
  r.typers.set(user, setTimeout(() => clearTyper(r, user), TYPING_SHOWN_MS));
  if (r === active) renderTyping();
}

function clearTyper(r, user) {
  if (!r.typers.has(user)) return;
  clearTimeout(r.typers.get(user));
  r.typers.delete(user);
  if (r === active) renderTyping();
}

function renderTyping() {
  const names = active ? [...active.typers.keys()].map(plain) : [];
  const el = $('typing');
  let text = '';
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = `${names.length} people are typing…`;
  el.textContent = text;
}

// ---- connection indicator --------------------------------------------------------------

const TRANSPORT_NAMES = { websocket: 'WebSocket', sse: 'SSE', longpoll: 'Long-poll' };

function renderConn({ state, transport, retryIn }) {
  const el = $('conn');
  el.dataset.state = state;
  el.dataset.transport = transport || '';
  const via = TRANSPORT_NAMES[transport] || '';
  const word = {
    idle: 'Starting', connecting: 'Connecting…', connected: 'Connected',
    reconnecting: 'Reconnecting…', offline: 'Offline', closed: 'Disconnected',
  }[state] || state;
  const showVia = via && state !== 'offline';
  $('conn-via').textContent = showVia ? via : '';
  $('conn-word').textContent = showVia ? ` · ${word}` : word;
  const seconds = retryIn ? ` Next try in ${Math.ceil(retryIn / 1000)} s.` : '';
  el.title = {
    connected: `Connected by ${via || 'the network'}. Messages arrive as they are sent.`,
    reconnecting: `The connection dropped; reconnecting by itself.${seconds} Nothing you send is lost.`,
    offline: `Cannot reach the server.${seconds} Messages you write are kept and sent when it is back.`,
  }[state] || '';
  $('conn-retry').hidden = !(state === 'reconnecting' || state === 'offline');
  if (chat && chat.user && !me.user) { me.user = chat.user; renderMe(); }
  else if (chat && chat.user && chat.user !== me.user) { me.user = chat.user; renderMe(); }
}

$('conn-retry').addEventListener('click', () => chat?.reconnectNow());

function renderMe() {
  const shown = plain(me.user || (me.name ? `~${me.name}` : ''));
  $('me-name').textContent = shown;
  $('me-avatar').replaceChildren(avatar(shown || '?'));
  $('change-name').hidden = !me.name; // a signed-in user keeps the name nginx gave
}

$('change-name').addEventListener('click', () => {
  if (chat && chat.outbox.size && !confirm('Some messages are not sent yet. Change name anyway?')) return;
  chat?.close();
  store.del('name');
  location.reload();
});

function onError(err) {
  if (err.retrying) return; // the client is on it
  let text = err.message || err.code;
  if (err.op === 'join') {
    text = `Cannot join #${err.room}: ${reasonText(err.code, err.message)}`;
    if (rooms.size > 1) removeRoom(err.room);
  } else if (err.status === 401) {
    text = 'This chat needs you to sign in.';
  }
  toast(text);
}

let toastTimer = null;
function toast(text) {
  const el = $('toast');
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 6000);
}

// ---- small screens: rooms and members slide over the chat ---------------------------------

function togglePanel(cls, button) {
  const open = !document.body.classList.contains(cls);
  document.body.classList.remove('show-rooms', 'show-members');
  document.body.classList.toggle(cls, open);
  for (const b of [$('rooms-toggle'), $('members-toggle')]) b.setAttribute('aria-expanded', 'false');
  button.setAttribute('aria-expanded', String(open));
}

$('rooms-toggle').addEventListener('click', () => togglePanel('show-rooms', $('rooms-toggle')));
$('members-toggle').addEventListener('click', () => togglePanel('show-members', $('members-toggle')));
$('scrim').addEventListener('click', () => document.body.classList.remove('show-rooms', 'show-members'));
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape') document.body.classList.remove('show-rooms', 'show-members');
});

window.addEventListener('beforeunload', (e) => {
  if (chat && [...chat.outbox.values()].some((i) => i.status !== 'failed')) e.preventDefault();
});

// "Today" turns into "Yesterday" at midnight.
setInterval(() => { for (const r of rooms.values()) relabelDays(r.list); }, 60000);

boot();
