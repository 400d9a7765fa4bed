// chat-es5.js: the chat page for engines that cannot run app.js (old
// Android WebViews, IE 10/11, old Safari and Firefox, locked-down kiosks).
// index.html's legacy.js loads it only where app.js did not run, so a
// modern browser never fetches it: app.js and chat-client.js serve those.
// It is one ES5 file (no Promise, fetch,
// classes, arrow functions, let/const; tests/e2e/browser_es5.test.mjs
// parses it as ES5) that chats over long-poll with XMLHttpRequest, with the
// guarantees of chat-client.js: every room resumes from the last seq it
// delivered (`rooms=lobby:N`), each message is shown once by (room, seq),
// and a message stays in the outbox until the server's ack, sent again with
// the same cid after a lost answer (the server stores a repeated cid once).
// It drives the same DOM as app.js (index.html), so it looks the same where
// the CSS works. The few rules it shares with app.js and chat-client.js
// (name and room patterns, MAX_TEXT, the error wording) are copies: an
// engine without modules cannot import them. docs/client.md says who gets
// which transport.
(function () {
  'use strict';

  // legacy.js loads this file only where app.js did not run; never both.
  if (window.chatModule) return;
  window.chatModule = 'es5';

  var POLL_TIMEOUT = 25; // seconds a poll may park (the server caps it)
  var REQUEST_TIMEOUT = 15000; // ms for a send, history or typing request
  var BACKOFF_MIN = 500;
  var BACKOFF_MAX = 30000;
  var MAX_SEND_RETRIES = 8; // "unavailable"/"rate_limited" answers before a send fails
  var TYPING_EVERY = 3000;
  var TYPING_SHOWN = 6000;
  var MAX_ROOMS = 20; // a poll carries at most 20 rooms
  var DEFAULT_MAX_TEXT = 4096; // bytes, until the server tells its $chat_max_text
  var ROOM_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
  var NAME_RE = /^[A-Za-z0-9_.\-]{1,32}$/;
  var URL_RE = /\bhttps?:\/\/[^\s<>"']+/gi;
  // Unicode's Bidi_Control characters (ALM, LRM, RLM, embeddings, overrides,
  // isolates): stripped from what is shown, so no text reorders itself or a
  // link into something it is not (view.js does the same).
  var BIDI_CONTROLS = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
  var TRAILING = /[.,;:!?'")\]}>]+$/;
  var REASONS = {
    too_large: 'too long', forbidden: 'not allowed here', rate_limited: 'too fast, slow down',
    unavailable: 'the server is busy', bad_request: 'not accepted', unauthorized: 'sign in first'
  };

  var me = { name: null, user: null };
  // The location's policy, from the first poll's answer (GET poll without
  // rooms): { max_text, readonly, rooms, first_room }; null until then.
  var policy = null;
  var helloDone = false; // the server was asked (a server without a policy answers none)
  var provisional = false; // the rooms are the default until the server names the first one
  var asked = ''; // the room the page was opened on (#room), if any
  var rooms = {}; // room -> see makeRoom()
  var order = []; // room names, as listed
  var active = null;
  var outbox = []; // { cid, room, text, status: pending|sending|waiting|failed, tries, el }
  var sending = false;
  var state = 'idle';
  var poll = null; // { xhr, rooms } of the poll on the wire
  var pollTimer = null;
  var fails = 0;
  var started = false;
  var typingAt = {};
  var toastTimer = null;

  function $(id) { return document.getElementById(id); }

  // ---- small helpers ------------------------------------------------------------------

  function each(list, fn) { for (var i = 0; i < list.length; i++) fn(list[i], i); }

  function indexOf(list, x) {
    for (var i = 0; i < list.length; i++) if (list[i] === x) return i;
    return -1;
  }

  function isArray(x) { return Object.prototype.toString.call(x) === '[object Array]'; }

  function on(el, type, fn) { el.addEventListener(type, fn, false); }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.appendChild(document.createTextNode(text));
    return e;
  }

  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }

  function hasClass(e, cls) { return (' ' + e.className + ' ').indexOf(' ' + cls + ' ') >= 0; }

  function setClass(e, cls, yes) {
    var has = hasClass(e, cls);
    if (yes && !has) e.className = (e.className ? e.className + ' ' : '') + cls;
    if (!yes && has) e.className = (' ' + e.className + ' ').replace(' ' + cls + ' ', ' ').replace(/^ | $/g, '');
  }

  function show(e, yes) {
    if (yes) e.removeAttribute('hidden');
    else e.setAttribute('hidden', '');
  }

  var store = {
    get: function (key, fallback) {
      try {
        var v = JSON.parse(window.localStorage.getItem('chat.' + key));
        return v === null || v === undefined ? fallback : v;
      } catch (e) { return fallback; }
    },
    set: function (key, value) {
      try { window.localStorage.setItem('chat.' + key, JSON.stringify(value)); } catch (e) { /* private mode */ }
    },
    del: function (key) {
      try { window.localStorage.removeItem('chat.' + key); } catch (e) { /* ignore */ }
    }
  };

  function utf8Bytes(s) {
    var n = 0;
    for (var i = 0; i < s.length; i++) {
      var c = s.charCodeAt(i);
      if (c < 0x80) n += 1;
      else if (c < 0x800) n += 2;
      else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) { n += 4; i++; }
      else n += 3;
    }
    return n;
  }

  function makeCid() {
    var c = window.crypto || window.msCrypto;
    var out = 'x';
    if (c && c.getRandomValues) {
      var bytes = new Uint8Array(12);
      c.getRandomValues(bytes);
      for (var i = 0; i < bytes.length; i++) out += (bytes[i] + 256).toString(36).slice(-2);
    } else {
      out += new Date().getTime().toString(36) + Math.random().toString(36).slice(2, 12);
    }
    return out.slice(0, 24);
  }

  // Exponential backoff with jitter: attempt 1 waits about BACKOFF_MIN.
  function backoff(attempt, min) {
    var ceiling = Math.min(BACKOFF_MAX, (min || BACKOFF_MIN) * Math.pow(2, Math.max(0, attempt - 1)));
    return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
  }

  function pad2(n) { return (n < 10 ? '0' : '') + n; }

  function plain(text) { return String(text === undefined || text === null ? '' : text).replace(BIDI_CONTROLS, ''); }

  // The room in the URL's fragment, or '' (a malformed escape is no room).
  function hashRoom() {
    try { return decodeURIComponent(window.location.hash.slice(1)); } catch (e) { return ''; }
  }

  function maxText() { return (policy && policy.max_text) || DEFAULT_MAX_TEXT; }

  function readOnly() { return Boolean(policy && policy.readonly === true); }

  // $chat_rooms: names, "prefix*" and "*", separated by spaces.
  function allowed(room) {
    if (!policy) return true;
    var parts = String(policy.rooms || '*').split(' ');
    for (var i = 0; i < parts.length; i++) {
      var p = parts[i];
      if (!p) continue;
      if (p.charAt(p.length - 1) === '*' ? room.indexOf(p.slice(0, -1)) === 0 : p === room) return true;
    }
    return false;
  }

  // ---- HTTP ---------------------------------------------------------------------------

  // One request; done(status, body) once: status 0 with code "network" or
  // "timeout" when no answer came. Returns a handle whose abort() ends it
  // silently.
  function request(method, path, data, timeoutMs, done) {
    var xhr = new XMLHttpRequest();
    var finished = false;
    var url = path;
    var body = null;
    var k;
    if (method === 'GET' && data) {
      var q = [];
      for (k in data) {
        if (data.hasOwnProperty(k) && data[k] !== undefined && data[k] !== null) {
          q.push(encodeURIComponent(k) + '=' + encodeURIComponent(String(data[k])));
        }
      }
      if (q.length) url += '?' + q.join('&');
    } else if (data) {
      body = JSON.stringify(data);
    }
    function finish(status, parsed) {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      xhr.onreadystatechange = function () {};
      done(status, parsed);
    }
    var timer = setTimeout(function () {
      finish(0, { code: 'timeout', message: 'no answer' });
      try { xhr.abort(); } catch (e) { /* ignore */ }
    }, timeoutMs);
    xhr.onreadystatechange = function () {
      if (xhr.readyState !== 4) return;
      var parsed = null;
      try { parsed = JSON.parse(xhr.responseText); } catch (e) { parsed = null; }
      if (xhr.status === 0) parsed = { code: 'network', message: 'network error' };
      finish(xhr.status, parsed);
    };
    try {
      xhr.open(method, url, true);
      xhr.setRequestHeader('Accept', 'application/json');
      xhr.setRequestHeader('X-Chat-Request', '1'); // not sendable cross-site without a preflight
      if (body !== null) xhr.setRequestHeader('Content-Type', 'application/json');
      xhr.send(body);
    } catch (e) {
      setTimeout(function () { finish(0, { code: 'network', message: 'network error' }); }, 0);
    }
    return {
      abort: function () {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        xhr.onreadystatechange = function () {};
        try { xhr.abort(); } catch (e) { /* ignore */ }
      }
    };
  }

  function errorCode(status, body) {
    if (body && body.code) return body.code;
    return status === 0 ? 'network' : 'http_' + status;
  }

  function retryable(code) {
    return code === 'network' || code === 'timeout' || code === 'unavailable' || code === 'rate_limited' ||
      /^http_5/.test(code);
  }

  // ---- connection state -----------------------------------------------------------------

  function setState(next, retryIn) {
    state = next;
    var c = $('conn');
    c.setAttribute('data-state', next);
    c.setAttribute('data-transport', 'longpoll');
    var word = {
      idle: 'Starting', connecting: 'Connecting…', connected: 'Connected',
      reconnecting: 'Reconnecting…', offline: 'Offline'
    }[next] || next;
    var via = next === 'offline' ? '' : 'Long-poll';
    $('conn-via').textContent = via;
    $('conn-word').textContent = via ? ' · ' + word : word;
    var seconds = retryIn ? ' Next try in ' + Math.ceil(retryIn / 1000) + ' s.' : '';
    c.title = {
      connected: 'Connected by long-poll (this browser has no WebSocket or ES modules). Messages arrive as they are sent.',
      reconnecting: 'The connection dropped; reconnecting by itself.' + seconds + ' Nothing you send is lost.',
      offline: 'Cannot reach the server.' + seconds + ' Messages you write are kept and sent when it is back.'
    }[next] || '';
    show($('conn-retry'), next === 'reconnecting' || next === 'offline');
  }

  // ---- the poll ---------------------------------------------------------------------------

  // The rooms parameter: each room from the last seq shown, or without one
  // (its last 50 messages and its members at once).
  function roomsParam() {
    var parts = [];
    each(order, function (name) {
      var r = rooms[name];
      if (allowed(name)) parts.push(r.seq === null ? name : name + ':' + r.seq);
    });
    return parts.join(',');
  }

  // Polls now; `quick` answers at once (the first poll, and the first after
  // a failure: it tells that we are connected again).
  function pollNow(quick) {
    clearTimeout(pollTimer);
    pollTimer = null;
    if (poll) poll.xhr.abort();
    poll = null;
    // Until the server told the policy: GET poll without rooms (who we are
    // and what the site allows, at once), so no room it refuses is asked for.
    var list = helloDone ? roomsParam() : '';
    if (!list && helloDone) return;
    var timeout = quick || !helloDone ? 0 : POLL_TIMEOUT;
    var query = { rooms: list || null, name: me.name, timeout: timeout };
    var flight = { rooms: list };
    poll = flight;
    flight.xhr = request('GET', 'poll', query, (timeout + 15) * 1000, function (status, body) {
      if (poll !== flight) return;
      poll = null;
      if (status === 200 && body && isArray(body.events)) {
        fails = 0;
        var hello = !list;
        helloDone = true;
        onPoll(body);
        if (state !== 'connected') setState('connected');
        pump();
        pollNow(hello);
        return;
      }
      if (!list && status === 400) { // a server that wants rooms: go on without a policy
        helloDone = true;
        pollNow(true);
        return;
      }
      if (status === 403) {
        checkRooms();
        return;
      }
      if (status === 401) {
        setState('offline');
        toast('This chat needs you to sign in.');
        return;
      }
      retryLater();
    });
  }

  function retryLater() {
    fails++;
    var delay = backoff(fails);
    setState(fails >= 4 || window.navigator.onLine === false ? 'offline' : 'reconnecting', delay);
    pollTimer = setTimeout(function () { pollNow(true); }, delay);
  }

  // A poll answered 403: a room is not allowed at this location (one just
  // joined, or the admin changed $chat_rooms). Ask for each room alone and
  // leave those refused; the others go on.
  function checkRooms() {
    var names = order.slice();
    var refused = [];
    function next(i) {
      if (i >= names.length) {
        each(refused, function (name) {
          toast('Cannot join #' + name + ': not allowed here');
          removeRoom(name, true);
        });
        if (!order.length) {
          setState('offline');
          toast('No room you were in is allowed here: join another one.');
          return;
        }
        if (refused.length) pollNow(true);
        else retryLater(); // each room alone was fine: not a room's fault, so no tight loop
        return;
      }
      var r = rooms[names[i]];
      if (!r) { next(i + 1); return; }
      var q = { rooms: r.seq === null ? r.name : r.name + ':' + r.seq, name: me.name, timeout: 0 };
      request('GET', 'poll', q, REQUEST_TIMEOUT, function (status) {
        if (status === 403) refused.push(names[i]);
        next(i + 1);
      });
    }
    next(0);
  }

  function onPoll(body) {
    var name;
    var members = body.members || {};
    if (typeof body.user === 'string' && body.user !== me.user) {
      me.user = body.user;
      $('me-name').textContent = plain(me.user);
    }
    if (body.policy && typeof body.policy === 'object') applyPolicy(body.policy);
    for (name in members) {
      if (members.hasOwnProperty(name) && rooms[name] && members[name] && isArray(members[name].members)) {
        rooms[name].members = members[name].members.slice();
        rooms[name].count = typeof members[name].count === 'number' ? members[name].count : members[name].members.length;
      }
    }
    each(body.events, onEvent);
    each(String(body.cursor || '').split(','), function (part) {
      var i = part.lastIndexOf(':');
      if (i <= 0) return;
      var r = rooms[part.slice(0, i)];
      var seq = Number(part.slice(i + 1));
      if (!r || isNaN(seq)) return;
      if (r.seq === null || seq > r.seq) r.seq = seq;
      if (!r.joined) {
        r.joined = true;
        r.head = r.seq;
        if (r.oldest === null && r.seq === 0) r.start = true;
        renderTop(r);
      }
    });
    renderRooms();
    renderMembers();
  }

  function onEvent(ev) {
    if (!ev || typeof ev !== 'object') return;
    var r = rooms[ev.room];
    if (!r) return;
    if (ev.op === 'msg') {
      deliver(r, ev);
    } else if (ev.op === 'presence') {
      each(ev.online || [], function (u) { if (indexOf(r.members, u) < 0) r.members.push(u); });
      each(ev.offline || [], function (u) {
        var i = indexOf(r.members, u);
        if (i >= 0) r.members.splice(i, 1);
      });
      if (typeof ev.count === 'number') r.count = ev.count;
      r.members.sort();
    } else if (ev.op === 'typing' && ev.user !== myName()) {
      clearTimeout(r.typers['u:' + ev.user]);
      r.typers['u:' + ev.user] = setTimeout(function () { clearTyper(r, ev.user); }, TYPING_SHOWN);
      if (r === active) renderTyping();
    }
  }

  // Exactly once, in order: a message at or below the room's seq was shown.
  function deliver(r, m) {
    if (typeof m.seq !== 'number' || (r.seq !== null && m.seq <= r.seq)) return;
    var backlog = !r.joined; // the room's first answer: what was said before we came
    r.seq = m.seq;
    var item = m.cid ? findOutbox(m.cid) : null;
    if (item && item.room === r.name) acked(item, m);
    if (m.user === myName() || (item && item.room === r.name)) me.user = me.user || m.user;
    clearTyper(r, m.user);
    var shown = showMessage(r, m, mine(m, item) ? 'sent' : '');
    if (shown && !backlog && r !== active && !mine(m, item)) r.unread++;
  }

  function mine(m, item) { return Boolean(item) || (myName() !== null && m.user === myName()); }

  function myName() { return me.user || (me.name ? '~' + me.name : null); }

  // The location's policy: rooms it does not allow are left (a nginx
  // $chat_rooms without lobby greets no one with an error), the first room
  // is the server's, a read-only location has no composer.
  function applyPolicy(p) {
    policy = p;
    var first = typeof p.first_room === 'string' && ROOM_RE.test(p.first_room) ? p.first_room : null;
    var wrong = [];
    each(order, function (name) { if (!allowed(name) || (provisional && name !== first)) wrong.push(name); });
    provisional = false;
    if (first && wrong.length === order.length) addRoom(first);
    each(wrong, function (name) {
      // the room of a link the site does not open says why; the others go quietly
      if (!allowed(name) && name === asked) toast('Cannot join #' + name + ': not allowed here');
      if (order.length > 1) removeRoom(name, true);
    });
    if (!active || !rooms[active.name]) switchTo(order[0]);
    show($('composer'), !readOnly());
    show($('readonly-note'), readOnly());
    checkLength();
  }

  // ---- sending ----------------------------------------------------------------------------

  function findOutbox(cid) {
    for (var i = 0; i < outbox.length; i++) if (outbox[i].cid === cid) return outbox[i];
    return null;
  }

  function dropOutbox(item) {
    var i = indexOf(outbox, item);
    if (i >= 0) outbox.splice(i, 1);
    if (item.el && item.el.parentNode) item.el.parentNode.removeChild(item.el);
  }

  function send(room, text) {
    var item = { cid: makeCid(), room: room, text: text, status: 'pending', tries: 0, el: null };
    item.el = messageEl({ cid: item.cid, user: myName() || 'you', text: text }, 'pending');
    outbox.push(item);
    rooms[room].outbox.appendChild(item.el);
    typingAt[room] = 0;
    scrollToBottom();
    pump();
  }

  // The ack of a message (or the message itself, seen first): it is stored.
  function acked(item, a) {
    dropOutbox(item);
    var r = rooms[item.room];
    if (!r) return;
    var existing = r.bySeq[a.seq];
    if (existing) setMsgState(existing, 'sent');
    else showMessage(r, { seq: a.seq, cid: item.cid, user: a.user || myName() || 'you', text: item.text, ts: a.ts }, 'sent');
  }

  // One request at a time, in order: the first message not sent holds the
  // others back (a failed one waits for the user and does not).
  function pump() {
    if (sending || state !== 'connected') return;
    var item = null;
    for (var i = 0; i < outbox.length; i++) {
      if (outbox[i].status === 'failed') continue;
      item = outbox[i];
      break;
    }
    if (!item || item.status !== 'pending') return;
    item.status = 'sending';
    sending = true;
    var data = { room: item.room, text: item.text, cid: item.cid };
    if (me.name) data.name = me.name;
    request('POST', 'send', data, REQUEST_TIMEOUT, function (status, body) {
      sending = false;
      if (indexOf(outbox, item) < 0) { pump(); return; }
      if (status === 200 && body && body.op === 'ack') {
        acked(item, body);
        pump();
        return;
      }
      var code = errorCode(status, body);
      var transient = code === 'network' || code === 'timeout' || /^http_5/.test(code);
      if (retryable(code) && (transient || ++item.tries <= MAX_SEND_RETRIES)) {
        // The answer may be lost and the message stored: the same cid again
        // is acknowledged once and stored once.
        item.status = 'waiting';
        if (transient) item.tries++;
        setTimeout(function () {
          if (item.status !== 'waiting') return;
          item.status = 'pending';
          pump();
        }, backoff(Math.min(item.tries, 8), 1000));
        return;
      }
      item.status = 'failed';
      setMsgState(item.el, 'failed', REASONS[code] || (body && body.message) || code);
      pump();
    });
  }

  function typing(room) {
    var now = new Date().getTime();
    if (now - (typingAt[room] || 0) < TYPING_EVERY || state !== 'connected') return;
    typingAt[room] = now;
    var data = { room: room };
    if (me.name) data.name = me.name;
    request('POST', 'typing', data, REQUEST_TIMEOUT, function () {});
  }

  // ---- messages on screen -----------------------------------------------------------------

  function linkify(parent, raw) {
    var text = plain(raw); // a link's text and its target are the same characters
    var last = 0;
    var m;
    URL_RE.lastIndex = 0;
    while ((m = URL_RE.exec(text)) !== null) {
      var url = m[0];
      var trail = url.match(TRAILING);
      if (trail) url = url.slice(0, url.length - trail[0].length);
      if (m.index > last) parent.appendChild(document.createTextNode(text.slice(last, m.index)));
      var a = el('a', '', url);
      a.href = url;
      a.target = '_blank';
      a.rel = 'noopener noreferrer';
      parent.appendChild(a);
      last = m.index + url.length;
      URL_RE.lastIndex = last;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  function messageEl(m, msgState) {
    var date = m.ts ? new Date(m.ts) : new Date();
    if (isNaN(date.getTime())) date = new Date();
    var li = el('li', 'msg' + (msgState ? ' mine' : ''));
    var bubble = el('div', 'bubble');
    var meta = el('div', 'meta');
    meta.appendChild(el('span', 'who', plain(m.user)));
    meta.appendChild(document.createTextNode(' '));
    var time = el('time', '', pad2(date.getHours()) + ':' + pad2(date.getMinutes()));
    time.title = date.toString();
    meta.appendChild(time);
    var text = el('div', 'text');
    var foot = el('div', 'foot');
    foot.appendChild(el('span', 'status'));
    bubble.appendChild(meta);
    bubble.appendChild(text);
    bubble.appendChild(foot);
    li.appendChild(bubble);
    if (typeof m.seq === 'number') li.setAttribute('data-seq', String(m.seq));
    if (m.cid) li.setAttribute('data-cid', m.cid);
    li.setAttribute('data-user', m.user);
    showBody(li, m);
    setMsgState(li, msgState);
    return li;
  }

  function childWithClass(parent, tag, cls) {
    var all = parent.getElementsByTagName(tag);
    for (var i = 0; i < all.length; i++) if (hasClass(all[i], cls)) return all[i];
    return null;
  }

  // The text of a message as it is now: its words (and "edited"), or that
  // it was deleted.
  function showBody(li, m) {
    var text = childWithClass(li, 'div', 'text');
    var meta = childWithClass(li, 'div', 'meta');
    var mark = childWithClass(meta, 'span', 'edited');
    if (mark) meta.removeChild(mark);
    clear(text);
    if (m.deleted) {
      setClass(text, 'deleted', true);
      text.appendChild(document.createTextNode('message deleted'));
      li.setAttribute('data-deleted', '1');
      return;
    }
    linkify(text, typeof m.text === 'string' ? m.text : '');
    if (m.edited) meta.appendChild(el('span', 'edited', 'edited'));
  }

  // An edit or a deletion (a msg with "edit" or "delete": seq) is no
  // message of its own: it changes the one it names. An edit without text
  // was replaced by a later one and changes nothing.
  function applyChange(r, m) {
    var target = r.bySeq[typeof m.edit === 'number' ? m.edit : m['delete']];
    if (!target || target.getAttribute('data-deleted')) return;
    if (typeof m['delete'] === 'number') showBody(target, { deleted: true });
    else if (typeof m.text === 'string') showBody(target, { text: m.text, edited: m.ts });
  }

  function setMsgState(li, msgState, reason) {
    if (msgState) li.setAttribute('data-state', msgState);
    else li.removeAttribute('data-state');
    var status = li.getElementsByTagName('span');
    for (var i = 0; i < status.length; i++) {
      if (!hasClass(status[i], 'status')) continue;
      clear(status[i]);
      if (msgState === 'pending') status[i].appendChild(el('span', 'label', 'Sending…'));
      else if (msgState === 'sent') status[i].appendChild(el('span', 'label', 'Sent'));
      else if (msgState === 'failed') {
        status[i].appendChild(el('span', 'label', reason ? 'Not sent: ' + reason : 'Not sent'));
        status[i].appendChild(document.createTextNode(' '));
        status[i].appendChild(el('button', 'link retry', 'Retry'));
        status[i].appendChild(document.createTextNode(' '));
        status[i].appendChild(el('button', 'link discard', 'Delete'));
      }
      return;
    }
  }

  // Puts a message in its place by seq; false when it is on screen already
  // (shown from its ack before its sender's name was known: named now).
  function showMessage(r, m, msgState) {
    if (typeof m.edit === 'number' || typeof m['delete'] === 'number') {
      applyChange(r, m);
      return false;
    }
    var existing = r.bySeq[m.seq];
    if (existing) {
      if (existing.getAttribute('data-user') !== m.user) {
        var named = messageEl(m, existing.getAttribute('data-state') || msgState);
        existing.parentNode.replaceChild(named, existing);
        r.bySeq[m.seq] = named;
      }
      return false;
    }
    var li = messageEl(m, msgState);
    var after = r.list.lastChild;
    while (after && Number(after.getAttribute('data-seq')) > m.seq) after = after.previousSibling;
    r.list.insertBefore(li, after ? after.nextSibling : r.list.firstChild);
    r.bySeq[m.seq] = li;
    if (r.oldest === null || m.seq < r.oldest) r.oldest = m.seq;
    if (m.seq === 1 && !r.start) {
      r.start = true;
      renderTop(r);
    }
    if (r === active) scrollToBottom();
    return true;
  }

  function scrollToBottom() {
    var log = $('log');
    log.scrollTop = log.scrollHeight;
  }

  function renderTop(r) {
    clear(r.top);
    if (r.start) {
      var p = el('p', 'start');
      p.appendChild(el('strong', '', '#' + r.name));
      p.appendChild(document.createTextNode(' — this is the beginning of the room.'));
      r.top.appendChild(p);
    } else if (r.loading || !r.joined) {
      r.top.appendChild(el('p', 'loading', 'Loading messages…'));
    } else {
      var b = el('button', 'link older', 'Load older messages');
      b.type = 'button';
      r.top.appendChild(b);
    }
  }

  function loadOlder(r) {
    if (r.loading || r.start || r.oldest === null) return;
    r.loading = true;
    renderTop(r);
    var q = { room: r.name, before: r.oldest, limit: 50, name: me.name };
    request('GET', 'history', q, REQUEST_TIMEOUT, function (status, body) {
      r.loading = false;
      if (status === 200 && body && isArray(body.messages)) {
        var log = $('log');
        var fromBottom = log.scrollHeight - log.scrollTop;
        each(body.messages, function (m) { showMessage(r, m, mine(m, null) ? 'sent' : ''); });
        // (a "horizon": retention removed what was older; nothing to load)
        if (!body.messages.length || body.messages[0].seq <= 1 || body.horizon !== undefined) r.start = true;
        if (r === active) log.scrollTop = log.scrollHeight - fromBottom;
      }
      renderTop(r);
    });
  }

  // ---- rooms --------------------------------------------------------------------------------

  function makeRoom(name) {
    var r = {
      name: name, seq: null, joined: false, head: 0, start: false, loading: false, oldest: null,
      bySeq: {}, members: [], count: 0, unread: 0,
      typers: {}, // 'u:' + user -> timer (a user may be named __proto__)
      view: el('div', 'room-view'), top: el('div', 'log-top'),
      list: el('ol', 'messages'), outbox: el('ol', 'messages outbox')
    };
    r.view.appendChild(r.top);
    r.view.appendChild(r.list);
    r.view.appendChild(r.outbox);
    renderTop(r);
    return r;
  }

  function roomsKey() { return 'rooms.' + (me.name || '@'); }

  function addRoom(name) {
    if (rooms[name]) return rooms[name];
    rooms[name] = makeRoom(name);
    order.push(name);
    store.set(roomsKey(), order);
    if (started) pollNow(true);
    renderRooms();
    return rooms[name];
  }

  function removeRoom(name, refused) {
    var r = rooms[name];
    if (!r || (!refused && order.length === 1)) return;
    delete rooms[name];
    order.splice(indexOf(order, name), 1);
    store.set(roomsKey(), order);
    for (var i = outbox.length - 1; i >= 0; i--) if (outbox[i].room === name) dropOutbox(outbox[i]);
    if (active === r) {
      active = null;
      if (order.length) switchTo(order[0]);
      else clear($('log'));
    }
    if (!refused && started) pollNow(true);
    renderRooms();
  }

  function switchTo(name) {
    var r = rooms[name] || addRoom(name);
    active = r;
    r.unread = 0;
    if (window.location.hash.slice(1) !== name) {
      if (window.history && window.history.replaceState) window.history.replaceState(null, '', '#' + name);
      else window.location.hash = name;
    }
    var log = $('log');
    clear(log);
    log.appendChild(r.view);
    scrollToBottom();
    $('room-name').textContent = '#' + name;
    $('input').placeholder = 'Message #' + name;
    renderRooms();
    renderMembers();
    renderTyping();
  }

  function renderRooms() {
    var ul = $('room-list');
    clear(ul);
    var total = 0;
    each(order, function (name) {
      var r = rooms[name];
      if (r === active) r.unread = 0;
      total += r.unread;
      var li = el('li', r === active ? 'current' : '');
      var a = el('a', 'room');
      a.href = '#' + name;
      a.appendChild(el('span', 'hash', '#'));
      a.appendChild(el('span', 'room-label', name));
      if (r.unread) a.appendChild(el('span', 'badge', r.unread > 99 ? '99+' : String(r.unread)));
      li.appendChild(a);
      if (order.length > 1) {
        var b = el('button', 'leave', '×');
        b.type = 'button';
        b.title = 'Leave #' + name;
        b.setAttribute('data-room', name);
        li.appendChild(b);
      }
      ul.appendChild(li);
    });
    document.title = (total ? '(' + total + ') ' : '') + (active ? '#' + active.name + ' · ' : '') + 'Chat';
    show($('rooms-badge'), total > 0);
  }

  function renderMembers() {
    var r = active;
    var n = r ? Math.max(r.count, r.members.length) : 0;
    $('room-sub').textContent = n === 1 ? '1 online' : n + ' online';
    $('member-count').textContent = String(n);
    $('members-toggle-count').textContent = String(n);
    var ul = $('member-list');
    clear(ul);
    if (!r) return;
    each(r.members, function (u) {
      var li = el('li', 'member');
      li.appendChild(el('span', 'member-name', plain(u)));
      if (u === myName()) li.appendChild(el('span', 'you', '(you)'));
      ul.appendChild(li);
    });
    if (n > r.members.length) ul.appendChild(el('li', 'more', 'and ' + (n - r.members.length) + ' more'));
  }

  function clearTyper(r, user) {
    if (!r.typers.hasOwnProperty('u:' + user)) return;
    clearTimeout(r.typers['u:' + user]);
    delete r.typers['u:' + user];
    if (r === active) renderTyping();
  }

  function renderTyping() {
    var names = [];
    if (active) for (var u in active.typers) if (active.typers.hasOwnProperty(u)) names.push(plain(u.slice(2)));
    var text = '';
    if (names.length === 1) text = names[0] + ' is typing…';
    else if (names.length === 2) text = names[0] + ' and ' + names[1] + ' are typing…';
    else if (names.length > 2) text = names.length + ' people are typing…';
    $('typing').textContent = text;
  }

  function toast(text) {
    var t = $('toast');
    t.textContent = text;
    show(t, true);
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { show(t, false); }, 6000);
  }

  // ---- start ----------------------------------------------------------------------------------

  function showLogin(message, form) {
    show($('app'), false);
    show($('login'), true);
    $('login-name').value = store.get('name', '') || '';
    $('login-error').textContent = message || '';
    var parts = $('login-form').getElementsByTagName('*');
    for (var i = 0; i < parts.length; i++) {
      var tag = parts[i].tagName;
      if (tag === 'LABEL' || tag === 'INPUT' || tag === 'BUTTON' || parts[i].id === 'login-hint' ||
          (tag === 'P' && !hasClass(parts[i], 'error'))) show(parts[i], form);
    }
    if (form) $('login-name').focus();
  }

  function start(name) {
    me = { name: name, user: name ? '~' + name : null };
    show($('login'), false);
    show($('app'), true);
    $('me-name').textContent = plain(myName() || '');
    show($('change-name'), Boolean(name));
    var saved = store.get(roomsKey(), []);
    if (!isArray(saved)) saved = [];
    each(saved, function (r) { if (typeof r === 'string' && ROOM_RE.test(r) && order.length < MAX_ROOMS - 1) addRoom(r); });
    var wanted = hashRoom();
    asked = wanted;
    // nothing saved, no room asked for: lobby until the server names the first room
    provisional = !order.length && !ROOM_RE.test(wanted);
    if (!order.length) addRoom('lobby');
    if (ROOM_RE.test(wanted)) addRoom(wanted);
    switchTo(ROOM_RE.test(wanted) ? wanted : order[0]);
    started = true;
    setState('connecting');
    pollNow(true);
    // A timer that fires far too late means the machine slept: the poll on
    // the wire may be dead, start it afresh.
    var tick = new Date().getTime();
    setInterval(function () {
      var now = new Date().getTime();
      if (now - tick > 20000 && started) pollNow(true);
      tick = now;
    }, 5000);
  }

  // With no name stored, ask the server whether nginx signed us in (see app.js).
  function boot() {
    var name = store.get('name', null);
    if (typeof name === 'string' && NAME_RE.test(name)) { start(name); return; }
    request('GET', 'poll', { timeout: 0 }, REQUEST_TIMEOUT, function (status) {
      if (status === 200) start(null);
      else if (status === 401) showLogin('This chat is for signed-in users only: sign in first.', false);
      else showLogin('', true);
    });
  }

  function cleanText(text) {
    return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '').replace(/\s+$/, '').replace(/^\n+/, '');
  }

  function checkLength() {
    var input = $('input');
    var bytes = utf8Bytes(input.value);
    var max = maxText();
    var over = bytes > max;
    show($('counter'), bytes >= max * 0.8);
    $('counter').textContent = bytes + ' / ' + max;
    setClass($('counter'), 'over', over);
    $('send').disabled = over || cleanText(input.value) === '';
    return !over;
  }

  function submit() {
    var input = $('input');
    var text = cleanText(input.value);
    if (!text || !checkLength() || !active || readOnly()) return;
    send(active.name, text);
    input.value = '';
    checkLength();
    input.focus();
  }

  on($('login-form'), 'submit', function (e) {
    e.preventDefault();
    var name = $('login-name').value.replace(/^\s+|\s+$/g, '');
    if (!NAME_RE.test(name)) {
      $('login-error').textContent = 'Use 1–32 letters, digits, dots, dashes or underscores.';
      return;
    }
    store.set('name', name);
    start(name);
  });

  on($('composer'), 'submit', function (e) {
    e.preventDefault();
    submit();
  });

  on($('input'), 'keydown', function (e) {
    if ((e.keyCode === 13 || e.key === 'Enter') && !e.shiftKey && !e.altKey && !e.ctrlKey && !e.metaKey) {
      e.preventDefault();
      submit();
    }
  });

  on($('input'), 'input', function () {
    checkLength();
    if (active && /\S/.test($('input').value)) typing(active.name);
  });

  on($('join-form'), 'submit', function (e) {
    e.preventDefault();
    var input = $('join-input');
    var name = input.value.replace(/^\s+|\s+$/g, '').toLowerCase().replace(/^#/, '').replace(/\s+/g, '-');
    if (!ROOM_RE.test(name)) {
      $('join-error').textContent = 'Room names: a–z, 0–9, - and _, starting with a letter or digit.';
      return;
    }
    if (!rooms[name] && order.length >= MAX_ROOMS) {
      $('join-error').textContent = 'You can be in ' + MAX_ROOMS + ' rooms at most: leave one first.';
      return;
    }
    if (!allowed(name)) {
      $('join-error').textContent = '#' + name + ' is not open on this site.';
      return;
    }
    $('join-error').textContent = '';
    input.value = '';
    switchTo(name);
  });

  on($('room-list'), 'click', function (e) {
    var t = e.target || e.srcElement;
    if (t && hasClass(t, 'leave')) removeRoom(t.getAttribute('data-room'), false);
  });

  // Retry, Delete and "Load older" (delegated: the log's content changes).
  on($('log'), 'click', function (e) {
    var t = e.target || e.srcElement;
    if (!t || t.tagName !== 'BUTTON') return;
    if (hasClass(t, 'older')) {
      if (active) loadOlder(active);
      return;
    }
    var li = t;
    while (li && !(li.tagName === 'LI' && hasClass(li, 'msg'))) li = li.parentNode;
    var item = li ? findOutbox(li.getAttribute('data-cid')) : null;
    if (!item) return;
    if (hasClass(t, 'retry') && item.status === 'failed') {
      item.status = 'pending';
      item.tries = 0;
      setMsgState(li, 'pending');
      pump();
    } else if (hasClass(t, 'discard')) {
      dropOutbox(item);
    }
  });

  on(window, 'hashchange', function () {
    var name = hashRoom();
    if (started && ROOM_RE.test(name) && (!active || name !== active.name)) {
      if (!rooms[name] && order.length >= MAX_ROOMS) return;
      switchTo(name);
    }
  });

  on(window, 'online', function () { if (started && state !== 'connected') pollNow(true); });
  on($('conn-retry'), 'click', function () { if (started) { fails = 0; pollNow(true); } });

  on($('change-name'), 'click', function () {
    store.del('name');
    window.location.reload();
  });

  on($('members-toggle'), 'click', function () {
    var open = !hasClass(document.body, 'show-members');
    setClass(document.body, 'show-rooms', false);
    setClass(document.body, 'show-members', open);
  });
  on($('rooms-toggle'), 'click', function () {
    var open = !hasClass(document.body, 'show-rooms');
    setClass(document.body, 'show-members', false);
    setClass(document.body, 'show-rooms', open);
  });
  on($('scrim'), 'click', function () {
    setClass(document.body, 'show-rooms', false);
    setClass(document.body, 'show-members', false);
  });

  window.chatEs5 = {
    get state() { return state; },
    outbox: outbox,
    rooms: rooms,
    reconnectNow: function () { fails = 0; pollNow(true); }
  };

  boot();
}());
