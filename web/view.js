// view.js: DOM building blocks of the chat page. Every text from the
// network goes in through textContent (never innerHTML); only http(s) URLs
// become links, and those open in a new tab without an opener or referrer.
// Bidirectional controls are stripped from what is shown, so no text can
// reorder itself (or a link) into something it is not: a link to
// "gnp.exe" never reads "exe.png".

const URL_RE = /\bhttps?:\/\/[^\s<>"']+/gi;
const TRAILING = /[.,;:!?'")\]}>]+$/;
const GROUP_MS = 5 * 60 * 1000;
// Unicode's Bidi_Control characters: ALM, LRM, RLM, the embeddings and
// overrides (U+202A-202E) and the isolates (U+2066-2069).
const BIDI_CONTROLS = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** Text from the network as it may be shown: without bidi controls. */
export function plain(text) {
  return String(text ?? '').replace(BIDI_CONTROLS, '');
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long' });
const dayYearFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined) el.append(c);
  return el;
}

/** Text with its http(s) links made clickable, as a fragment of text nodes and <a>s. */
export function linkify(raw) {
  const text = plain(raw); // the link's text and its target are the same characters
  const frag = document.createDocumentFragment();
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    let url = m[0];
    const trail = url.match(TRAILING);
    if (trail) url = url.slice(0, -trail[0].length);
    let href = null;
    try {
      const u = new URL(url);
      if (u.protocol === 'http:' || u.protocol === 'https:') href = u.href;
    } catch { /* not a URL after all */ }
    if (!href) continue;
    if (m.index > last) frag.append(text.slice(last, m.index));
    const a = document.createElement('a');
    a.href = href;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    a.textContent = url;
    frag.append(a);
    last = m.index + url.length;
  }
  if (last < text.length) frag.append(text.slice(last));
  return frag;
}

export function dayKey(date) {
  return `${date.getFullYear()}-${date.getMonth() + 1}-${date.getDate()}`;
}

export function dayLabel(date, now = new Date()) {
  const today = dayKey(now);
  const y = new Date(now);
  y.setDate(y.getDate() - 1);
  const key = dayKey(date);
  if (key === today) return 'Today';
  if (key === dayKey(y)) return 'Yesterday';
  return (date.getFullYear() === now.getFullYear() ? dayFmt : dayYearFmt).format(date);
}

function hue(name) {
  let x = 0;
  for (const ch of name) x = (x * 31 + ch.codePointAt(0)) >>> 0;
  return x % 360;
}

/** A round badge with the name's first letter, coloured by the name. */
export function avatar(name) {
  const letter = [...plain(name).replace(/^~/, '')][0] || '?';
  const el = h('span', { class: 'avatar', 'aria-hidden': 'true', text: letter.toUpperCase() });
  el.style.setProperty('--hue', String(hue(name)));
  return el;
}

/**
 * One message: m = { seq?, cid?, user, text, ts?, edited?, deleted? },
 * state: '' | 'pending' | 'sent' | 'failed'.
 */
export function messageEl(m, { mine = false, state = '' } = {}) {
  const date = m.ts ? new Date(m.ts) : new Date();
  const time = h('time', { datetime: date.toISOString(), title: fullFmt.format(date), text: timeFmt.format(date) });
  const status = h('span', { class: 'status' });
  const el = h('li', { class: `msg${mine ? ' mine' : ''}` },
    mine ? null : avatar(m.user),
    h('div', { class: 'bubble' },
      h('div', { class: 'meta' }, h('span', { class: 'who', text: plain(m.user) }), ' ', time),
      h('div', { class: 'text' }),
      h('div', { class: 'foot' }, status)));
  showBody(el, m);
  if (m.seq !== undefined && m.seq !== null) el.dataset.seq = String(m.seq);
  if (m.cid) el.dataset.cid = m.cid;
  el.dataset.user = m.user;
  el.style.setProperty('--hue', String(hue(m.user)));
  el.dataset.day = dayKey(date);
  el.dataset.t = String(date.getTime());
  setState(el, state);
  return el;
}

// The text of a message as it is now: its words (and "edited"), or that
// it was deleted.
function showBody(el, m) {
  const text = el.querySelector('.text');
  const meta = el.querySelector('.meta');
  meta.querySelector('.edited')?.remove();
  if (m.deleted) {
    text.classList.add('deleted');
    text.replaceChildren('message deleted');
    el.dataset.deleted = '';
    return;
  }
  text.replaceChildren(linkify(m.text ?? ''));
  if (m.edited) {
    const when = new Date(m.edited);
    meta.append(h('span', { class: 'edited', title: `edited ${fullFmt.format(when)}`, text: 'edited' }));
  }
}

/**
 * An edit or a deletion (a msg with "edit" or "delete": seq) applied to
 * the element of the message it names. An edit without text was replaced
 * by a later one and changes nothing.
 */
export function applyChange(el, m) {
  if (el.dataset.deleted !== undefined) return;
  if (m.delete !== undefined) showBody(el, { deleted: true });
  else if (m.text !== undefined) showBody(el, { text: m.text, edited: m.ts });
}

/** pending -> sent -> failed, as words for everyone and an icon by CSS. */
export function setState(el, state, reason = '') {
  if (state) el.dataset.state = state;
  else delete el.dataset.state;
  const status = el.querySelector('.status');
  status.replaceChildren();
  if (state === 'pending') status.append(h('span', { class: 'label', text: 'Sending…' }));
  else if (state === 'sent') status.append(h('span', { class: 'label', title: 'Delivered to the server', text: 'Sent' }));
  else if (state === 'failed') {
    status.append(
      h('span', { class: 'label', text: reason ? `Not sent: ${reason}` : 'Not sent' }), ' ',
      h('button', { type: 'button', class: 'link retry', text: 'Retry' }), ' ',
      h('button', { type: 'button', class: 'link discard', text: 'Delete' }));
  }
}

function isMsg(el) { return el && el.classList.contains('msg'); }

function prevMsg(el) {
  let p = el.previousElementSibling;
  while (p && !isMsg(p)) p = p.previousElementSibling;
  return p;
}

function nextMsg(el) {
  let n = el.nextElementSibling;
  while (n && !isMsg(n)) n = n.nextElementSibling;
  return n;
}

function daySep(el) {
  const date = new Date(Number(el.dataset.t));
  const sep = h('li', { class: 'day', role: 'separator' }, h('span', { text: dayLabel(date) }));
  sep.dataset.day = el.dataset.day;
  return sep;
}

// The day separator right before `el` exists exactly when the day changes,
// and `el` continues the previous bubble when the same person wrote within
// five minutes of the same day.
function fixBefore(el) {
  const prev = prevMsg(el);
  const before = el.previousElementSibling;
  const hasSep = before && before.classList.contains('day');
  const needSep = !prev || prev.dataset.day !== el.dataset.day;
  if (needSep && !hasSep) el.before(daySep(el));
  if (!needSep && hasSep) before.remove();
  const cont = prev && !needSep && prev.dataset.user === el.dataset.user &&
    Number(el.dataset.t) - Number(prev.dataset.t) < GROUP_MS;
  el.classList.toggle('cont', Boolean(cont));
}

/** Inserts a message element into a list ordered by data-seq. */
export function insertBySeq(list, el) {
  const seq = Number(el.dataset.seq);
  let after = list.lastElementChild;
  while (after && !(isMsg(after) && Number(after.dataset.seq) < seq)) after = after.previousElementSibling;
  if (after) after.after(el);
  else list.prepend(el);
  fixBefore(el);
  const next = nextMsg(el);
  if (next) fixBefore(next);
}

/** Re-labels day separators ("Today" becomes "Yesterday" at midnight). */
export function relabelDays(root) {
  for (const sep of root.querySelectorAll('li.day')) {
    const [y, m, d] = sep.dataset.day.split('-').map(Number);
    sep.firstElementChild.textContent = dayLabel(new Date(y, m - 1, d));
  }
}
