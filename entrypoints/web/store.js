// What the page knows: the session, the conversations and their messages,
// the last cursor, and a local id -> username map (the contract has no
// user-by-id lookup, so names come from logins and lookups by username).
// The session, cursor, conversation list, unread counts and names survive a
// reload in localStorage; message contents stay in memory (history reloads).

const SESSION_KEY = "courier.session";
const NAMES_KEY = "courier.names";
const userKey = (userId) => `courier.user.${userId}`;
const PREVIEW_CHARS = 80;
const MAX_PRESENCE_IDS = 200; // the server's cap on one presence_subscribe
export const DELETED_PREVIEW = "message deleted";

function readJson(key, fallback) {
  try {
    const raw = localStorage.getItem(key);
    return raw ? JSON.parse(raw) : fallback;
  } catch (err) {
    return fallback;
  }
}

function writeJson(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch (err) {
    /* storage full or disabled: the page still works for this visit */
  }
}

export const BEFORE_ALL = "^"; // a pending send in a conversation that showed no message yet

export const convKey = (kind, id) => (kind === "group" ? `g:${id}` : `u:${id}`);

// A conversation's order: by seq, the message's place in its conversation, the same for
// everyone (the server's order of acceptance; created_at has whole seconds and the
// server's clock). A message without one (queued before the server numbered messages)
// falls back to created_at.
export function byPlace(a, b) {
  if (a.seq != null && b.seq != null) return a.seq - b.seq;
  return (a.created_at || 0) - (b.created_at || 0);
}

// Where msg goes in msgs (in order): after every message not later than it. From the
// end, as a new message is most often the last.
function placeOf(msgs, msg) {
  let i = msgs.length;
  while (i > 0 && byPlace(msg, msgs[i - 1]) < 0) i -= 1;
  return i;
}

export class Store {
  constructor() {
    this.session = readJson(SESSION_KEY, null); // {token, user_id, username, expires_at}
    this.names = readJson(NAMES_KEY, {});
    this.reset();
  }

  reset() {
    this.cursor = null;
    this.convs = new Map(); // key -> conversation
    this.seen = new Set(); // message ids already placed somewhere
    this.seenEvents = new Set(); // ids of group changes already applied
    this.active = null;
    // Pushed, never stored (neither here nor on the server): what the socket said last.
    this.presence = new Map(); // user id -> {status, last_seen}
    this.typing = new Map(); // conversation key -> user ids typing there, first started first
  }

  get me() {
    return this.session ? this.session.user_id : null;
  }

  // --- session ----------------------------------------------------------
  setSession(session) {
    this.session = session;
    writeJson(SESSION_KEY, session);
    this.rememberName(session.user_id, session.username);
  }

  clearSession() {
    this.session = null;
    try {
      localStorage.removeItem(SESSION_KEY);
    } catch (err) {
      /* ignore */
    }
  }

  sessionExpired() {
    const exp = this.session && this.session.expires_at;
    if (exp === undefined || exp === null) return false;
    const seconds = typeof exp === "number" ? exp : Date.parse(exp) / 1000;
    return Number.isFinite(seconds) && seconds * 1000 <= Date.now();
  }

  // --- per-user state that survives a reload -----------------------------
  load() {
    this.reset();
    const saved = readJson(userKey(this.me), {});
    this.cursor = saved.cursor || null;
    for (const [key, c] of Object.entries(saved.convs || {})) {
      const conv = this.conv(key);
      conv.lastTs = c.lastTs || 0;
      conv.preview = c.preview || "";
      conv.unread = c.unread || 0;
      conv.firstUnreadId = c.firstUnreadId || null;
      conv.lastSeq = c.lastSeq || 0;
      conv.readSeq = c.readSeq || 0;
      conv.countedSeq = c.countedSeq || 0;
      conv.peerReadSeq = c.peerReadSeq || 0;
      if (c.name) conv.name = c.name;
    }
    this.active = saved.active && this.convs.has(saved.active) ? saved.active : null;
  }

  save() {
    if (!this.me) return;
    const convs = {};
    for (const conv of this.convs.values()) {
      convs[conv.key] = {
        lastTs: conv.lastTs,
        preview: conv.preview,
        unread: conv.unread,
        lastSeq: conv.lastSeq,
        readSeq: conv.readSeq,
        countedSeq: conv.countedSeq,
        peerReadSeq: conv.peerReadSeq,
      };
      if (conv.unread && conv.firstUnreadId) convs[conv.key].firstUnreadId = conv.firstUnreadId;
      if (conv.kind === "group" && conv.name) convs[conv.key].name = conv.name;
    }
    writeJson(userKey(this.me), { cursor: this.cursor, convs, active: this.active });
  }

  setCursor(cursor) {
    if (cursor) {
      this.cursor = cursor;
      this.save();
    }
  }

  // --- names -------------------------------------------------------------
  rememberName(userId, username) {
    if (!userId || !username || this.names[userId] === username) return;
    this.names[userId] = username;
    writeJson(NAMES_KEY, this.names);
  }

  // Should the server ever add usernames to what it sends (allowed: "more
  // fields may be added"), use them.
  learnNames(obj) {
    if (!obj) return;
    if (obj.from_username) this.rememberName(obj.from_user_id, obj.from_username);
    if (obj.to_username) this.rememberName(obj.to_user_id, obj.to_username);
    for (const member of Array.isArray(obj.members) ? obj.members : []) {
      if (member && member.user_id && member.username) this.rememberName(member.user_id, member.username);
    }
  }

  nameOf(userId) {
    if (userId === this.me) return this.session.username;
    const name = this.names[userId];
    if (!name && this.onUnknownName) this.onUnknownName(userId);
    return name || `user ${String(userId).slice(0, 8)}`;
  }

  knowsName(userId) {
    return userId === this.me || Boolean(this.names[userId]);
  }

  // --- conversations ------------------------------------------------------
  conv(key) {
    let conv = this.convs.get(key);
    if (!conv) {
      const kind = key.startsWith("g:") ? "group" : "private";
      conv = {
        key,
        kind,
        id: key.slice(2),
        name: "",
        group: null, // {group_id, name, owner_id, member_ids}
        msgs: [], // display order, oldest first
        ids: new Set(),
        unread: 0,
        firstUnreadId: null, // the oldest message counted in unread
        divider: null, // the "new messages" divider goes before this message
        left: null, // {by}: this user was removed; the history stays, read-only
        sending: false, // a send of this conversation is in flight (one at a time, in order)
        lastTs: 0,
        preview: "",
        // Read state, by seq (the server's conversation list, then the event view):
        lastSeq: 0, // the highest seq of a message known in the conversation
        readSeq: 0, // this user's read marker
        countedSeq: 0, // messages up to this seq are accounted for in `unread`
        peerReadSeq: 0, // private: the other user's marker (their receipts)
        reads: new Map(), // group: user_id -> read_seq (GET .../reads, then receipts)
        dividerSeq: null, // the "new messages" divider goes before the first message from others after it
        history: "none", // none | loading | loaded
        nextBefore: null,
        pending: [], // own messages being sent: {cid, content, state, afterId, error}
      };
      this.convs.set(key, conv);
    }
    return conv;
  }

  title(conv) {
    if (conv.kind === "group") return conv.name || (conv.group && conv.group.name) || "Group";
    if (conv.id === this.me) return `${this.session.username} (you)`;
    return this.nameOf(conv.id);
  }

  keyOfMessage(msg) {
    if (msg.type === "group") return convKey("group", msg.group_id);
    const peer = msg.from_user_id === this.me ? msg.to_user_id : msg.from_user_id;
    return convKey("private", peer);
  }

  // Place a new message in its conversation, by seq (most often at the end).
  // Answers the conversation, or null when the message was already there (dedup by id).
  append(msg, { live = false } = {}) {
    if (!msg || !msg.id || this.seen.has(msg.id)) return null;
    this.learnNames(msg);
    const conv = this.conv(this.keyOfMessage(msg));
    this.seen.add(msg.id);
    conv.ids.add(msg.id);
    const i = placeOf(conv.msgs, msg);
    conv.msgs.splice(i, 0, msg);
    // created_at has whole seconds and the server's clock: a message that
    // just arrived sorts the list of conversations by the time it arrived here.
    const ts = (msg.created_at || 0) * 1000;
    conv.lastTs = Math.max(conv.lastTs, live ? Math.max(ts, Date.now()) : ts);
    if (i === conv.msgs.length - 1) this.setPreview(conv, msg);
    return conv;
  }

  // The 201 answer to one's own send. With its seq it goes to its place among
  // the messages shown: what arrived while it was in flight is shown after it
  // when the server accepted it after (as history will show it). Without one (a
  // server that does not number messages) where the pending bubble stood (after
  // afterId, the last message shown when Send was pressed), past any message
  // that arrived meanwhile with an earlier created_at.
  placeOwn(msg, afterId) {
    if (!msg || !msg.id || this.seen.has(msg.id)) return null;
    this.learnNames(msg);
    const conv = this.conv(this.keyOfMessage(msg));
    let i = conv.msgs.length; // afterId unknown: at the end
    if (msg.seq != null) i = placeOf(conv.msgs, msg);
    else {
      if (afterId === BEFORE_ALL) i = 0;
      else if (afterId && conv.ids.has(afterId)) i = conv.msgs.findIndex((m) => m.id === afterId) + 1;
      while (i < conv.msgs.length && conv.msgs[i].created_at < msg.created_at) i += 1;
    }
    conv.msgs.splice(i, 0, msg);
    this.seen.add(msg.id);
    conv.ids.add(msg.id);
    conv.lastTs = Math.max(conv.lastTs, (msg.created_at || 0) * 1000, Date.now());
    if (i === conv.msgs.length - 1) this.setPreview(conv, msg);
    return conv;
  }

  setPreview(conv, msg) {
    conv.preview = msg.deleted ? DELETED_PREVIEW : String(msg.content).replace(/\s+/g, " ").slice(0, PREVIEW_CHARS);
    conv.previewFrom = msg.deleted ? null : msg.from_user_id;
  }

  // --- read state ---------------------------------------------------------------
  // The server's conversation list is the baseline: what it counted unread stands, and
  // a message later than its last_seq (the list trails the event stream by the
  // worker's lag) is counted as it arrives (countArrival).
  // `rank`: its place in the server's list (1, 2, ...), which keeps the server's order
  // among conversations whose updated_at (whole seconds) is the same.
  applyServerConversation(item, rank = 1) {
    const group = item.type === "group";
    const conv = this.conv(convKey(group ? "group" : "private", group ? item.group_id : item.user_id));
    if (group) conv.name = item.name || conv.name;
    else this.rememberName(item.user_id, item.username);
    conv.lastTs = Math.max(conv.lastTs, (item.updated_at || 0) * 1000 + 1 / (rank + 1));
    conv.readSeq = Math.max(conv.readSeq, item.read_seq || 0);
    // Messages after the list's last_seq that arrived before it (counted then) stay counted.
    const later = conv.msgs.filter((m) => m.seq > item.last_seq && m.seq > conv.readSeq && m.from_user_id !== this.me);
    conv.unread = (item.unread_count || 0) + later.length;
    conv.countedSeq = Math.max(item.last_seq || 0, conv.countedSeq);
    conv.lastSeq = Math.max(conv.lastSeq, item.last_seq || 0);
    const last = item.last_message;
    if (last && (!conv.msgs.length || last.seq >= conv.msgs[conv.msgs.length - 1].seq)) this.setPreview(conv, last);
    return conv;
  }

  // A message that just reached the page (pull, socket, history): whether it counts as
  // unread - from someone else, after the read marker, and not accounted for yet.
  countArrival(conv, msg) {
    if (msg.seq == null) return false;
    conv.lastSeq = Math.max(conv.lastSeq, msg.seq);
    if (msg.from_user_id === this.me) {
      // One's own send moves one's marker (the server does the same).
      conv.readSeq = Math.max(conv.readSeq, msg.seq);
      conv.countedSeq = Math.max(conv.countedSeq, msg.seq);
      return false;
    }
    if (msg.seq <= conv.countedSeq || msg.seq <= conv.readSeq) return false;
    conv.countedSeq = msg.seq;
    return true;
  }

  // Only what others let be seen counts: their receipts and GET .../reads. (A reply
  // moves its sender's marker too, but someone who turned receipts off is never counted.)
  noteGroupRead(conv, userId, seq) {
    if (seq > (conv.reads.get(userId) || 0)) conv.reads.set(userId, seq);
  }

  // How many other members have read up to seq (a group's "read by N").
  readBy(conv, seq) {
    let n = 0;
    for (const [userId, readSeq] of conv.reads) if (userId !== this.me && readSeq >= seq) n += 1;
    return n;
  }

  // This user's marker moved to seq (here, in another window, or on another device).
  // Answers false when what stays unread cannot be told from the messages at hand
  // (the caller asks the server's list again).
  moveReadMarker(conv, seq) {
    if (seq <= conv.readSeq) return true;
    conv.readSeq = seq;
    if (seq >= conv.countedSeq) {
      conv.unread = 0;
      return true;
    }
    const held = conv.msgs.filter((m) => m.seq != null);
    if (!held.length || held[0].seq > seq + 1) return false;
    conv.unread = held.filter((m) => m.seq > seq && m.seq <= conv.countedSeq && m.from_user_id !== this.me).length;
    return true;
  }

  // An edit or deletion (message_updated / message_deleted): the message shown changes
  // in place. Answers its conversation, or null when the message is not shown here.
  applyChange(event) {
    const key = event.group_id ? convKey("group", event.group_id) : this.keyOfMessage({ ...event, type: "private" });
    const conv = this.convs.get(key);
    if (!conv) return null;
    const i = conv.msgs.findIndex((m) => m.id === event.id);
    if (i < 0) return conv;
    const old = conv.msgs[i];
    let changed;
    if (event.type === "message_deleted") {
      if (old.deleted) return conv;
      changed = { type: old.type, id: old.id, seq: old.seq, from_user_id: old.from_user_id, created_at: old.created_at, deleted: true };
      if (old.group_id) changed.group_id = old.group_id;
      if (old.to_user_id) changed.to_user_id = old.to_user_id;
    } else {
      if (old.deleted || (old.edited_at && old.edited_at > event.edited_at)) return conv;
      changed = { ...old, content: event.content, edited_at: event.edited_at };
    }
    conv.msgs[i] = changed;
    if (i === conv.msgs.length - 1) this.setPreview(conv, changed);
    return conv;
  }

  // Merge a history page (newest first, as the API answers it), by seq: the
  // first page is the newest part of the conversation, messages already known
  // and not in it are older or newer; a later page is older than what is shown.
  // (A stable sort: messages the order cannot tell apart keep theirs.)
  mergeHistory(conv, page, { first }) {
    const pageMsgs = [...(page.messages || [])].filter((m) => m && m.id).reverse(); // oldest first
    const fresh = pageMsgs.filter((m) => !conv.ids.has(m.id));
    if (first && pageMsgs.length) {
      const pageIds = new Set(pageMsgs.map((m) => m.id));
      const rest = conv.msgs.filter((m) => !pageIds.has(m.id));
      conv.msgs = [...pageMsgs, ...rest].sort(byPlace);
    } else {
      conv.msgs = [...fresh, ...conv.msgs].sort(byPlace);
    }
    for (const m of fresh) {
      this.learnNames(m);
      conv.ids.add(m.id);
      this.seen.add(m.id);
      if (m.seq != null) conv.lastSeq = Math.max(conv.lastSeq, m.seq);
    }
    if (conv.msgs.length) {
      const last = conv.msgs[conv.msgs.length - 1];
      this.setPreview(conv, last);
      conv.lastTs = Math.max(conv.lastTs, (last.created_at || 0) * 1000);
    }
    conv.nextBefore = page.next_before || null;
    return fresh.length;
  }

  // --- presence and typing -------------------------------------------------------
  // A presence frame: {user_id, status: "online" | "offline", last_seen (Unix seconds or null)}.
  setPresence(frame) {
    this.presence.set(frame.user_id, { status: frame.status, last_seen: frame.last_seen ?? null });
  }

  isOnline(userId) {
    const p = this.presence.get(userId);
    return Boolean(p && p.status === "online");
  }

  // The users whose presence the page shows: the other side of each private chat listed,
  // most recent first, as many as one subscription takes.
  presenceIds() {
    const ids = [];
    for (const conv of this.sortedConvs()) {
      if (conv.kind !== "private" || conv.id === this.me) continue;
      ids.push(conv.id);
      if (ids.length === MAX_PRESENCE_IDS) break;
    }
    return ids;
  }

  // Answers whether anything changed.
  setTyping(key, userId, typing) {
    const now = this.typing.get(key) || [];
    const has = now.includes(userId);
    if (typing === has) return false;
    const next = typing ? [...now, userId] : now.filter((id) => id !== userId);
    if (next.length) this.typing.set(key, next);
    else this.typing.delete(key);
    return true;
  }

  typersOf(key) {
    return this.typing.get(key) || [];
  }

  sortedConvs() {
    return [...this.convs.values()].sort((a, b) => b.lastTs - a.lastTs || this.title(a).localeCompare(this.title(b)));
  }

  totalUnread() {
    let n = 0;
    for (const conv of this.convs.values()) n += conv.unread;
    return n;
  }
}
