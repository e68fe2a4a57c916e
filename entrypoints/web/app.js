// Courier's chat page: wires the browser client (courier.js: the API and the event
// stream) and the store to the DOM. Everything a user or the server wrote is put on the page with
// textContent, never parsed as HTML.

import { CourierClient, CourierError, RESYNC, isRetryable, newClientMsgId } from "./courier.js";
import { BEFORE_ALL, DELETED_PREVIEW, Store, convKey } from "./store.js";

const $ = (id) => document.getElementById(id);
const USERNAME_RE = /^[A-Za-z0-9_.-]{3,32}$/;
const NEAR_BOTTOM_PX = 80;
const LOAD_OLDER_PX = 80;
// The server's limit on a message's content, in characters (code points, as the server
// counts them). No endpoint tells it, so the page starts from the server's default
// (COURIER_MAX_CONTENT_LENGTH, 4000) and learns the real one from a 413 content_too_long
// answer ("content is longer than N characters") should the server be set otherwise.
let contentLimit = 4000;
const COUNTER_FROM = 0.9; // the counter shows from 90 % of the limit
// The server's edit window (COURIER_EDIT_WINDOW, 48 hours by default): Edit is offered
// within it; should the server's be shorter, its 403 edit_window_closed says so.
const EDIT_WINDOW_SECONDS = 48 * 3600;
const MARK_READ_AFTER_MS = 250; // reads while scrolling through a burst go as one
const CONVERSATION_PAGES = 20; // at most 20 pages of 100 in the list
// Typing: the server relays at most two typing frames a second per socket (more are
// dropped, silently) and ends a start by itself when no new one comes within 6 s.
const TYPING_FRAME_GAP_MS = 1000; // so the page sends at most one a second
const TYPING_REPEAT_MS = 4000; // a start again while the user keeps typing, well within the 6 s
const TYPING_IDLE_MS = 3000; // no key for this long: stop
const PRESENCE_REFRESH_MS = 60_000; // "last seen 5 min ago" is written again each minute

const store = new Store();
let groupsLoaded = false;

// No retries inside the client: the page shows each failure as it happens, and sends
// again by itself (sendPending) in ways the user sees.
const client = new CourierClient({
  retryFor: 0,
  onUnauthorized: () => toLogin("Your session has ended. Please log in again."),
});

// A name the page has not seen yet is looked up once (GET /users/{id}); the
// views are drawn again when it arrives.
const namesAsked = new Set();
store.onUnknownName = (userId) => {
  if (namesAsked.has(userId) || !store.session) return;
  namesAsked.add(userId);
  client
    .getUser(userId)
    .then((user) => {
      store.rememberName(user.user_id, user.username);
      renderListSoon();
      renderPane({ resetScroll: false });
    })
    .catch(() => namesAsked.delete(userId));
};

// The session's event stream (made by startApp): the pulls and the socket, every event once.
let stream = null;

function openStream() {
  return client.events({
    cursor: store.cursor,
    fromStart: true, // a first login shows what the log retains
    onEvent: (event, { live, first }) => {
      if (event.type === RESYNC) {
        // Older than what the inbox keeps: the stream takes what is retained, and the
        // history calls fill the rest when a conversation is opened.
        store.cursor = null;
        for (const conv of store.convs.values()) conv.history = "none";
        return;
      }
      // A first pull is old history, not news.
      receive(event, live ? { countUnread: true, live: true } : { countUnread: !first, first });
      if (event.cursor) store.setCursor(event.cursor);
    },
    onState: (state, retryAt) => {
      renderConnState(state, retryAt);
      if (state !== "online") {
        socketLost();
        return;
      }
      // Presence is watched per socket: a new socket asks for it again.
      subscribePresence({ force: true });
      // Back online: what could not be sent meanwhile goes now, with its client_msg_id.
      resendWaiting();
    },
    onError: (error) => {
      if (error.status === 401) toLogin("Your session expired. Please log in again.");
    },
    onCaughtUp: showArrivedWhileAway,
    beforeReconnect: async () => {
      await client.me();
      if (!groupsLoaded) await loadGroups();
    },
  });
}

// ---------------------------------------------------------------------------
// DOM helpers

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "className") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function show(node, visible) {
  node.hidden = !visible;
}

function setError(id, err) {
  const node = $(id);
  node.textContent = err ? (err instanceof Error ? err.message : String(err)) : "";
}

function initials(name) {
  const s = String(name || "?").trim();
  return (Array.from(s)[0] || "?").toUpperCase();
}

function hue(id) {
  let h = 0;
  for (const ch of String(id)) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

function avatar(id, label, extraClass = "") {
  const node = el("div", { className: `avatar ${extraClass}`.trim(), "aria-hidden": "true", text: initials(label) });
  node.style.setProperty("--h", hue(id));
  return node;
}

function timeOf(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function dayOf(seconds) {
  const d = new Date(seconds * 1000);
  const today = new Date();
  const yesterday = new Date(Date.now() - 86_400_000);
  if (d.toDateString() === today.toDateString()) return "Today";
  if (d.toDateString() === yesterday.toDateString()) return "Yesterday";
  return d.toLocaleDateString([], { weekday: "short", year: "numeric", month: "short", day: "numeric" });
}

let saveTimer = null;
function saveSoon() {
  if (saveTimer) return;
  saveTimer = setTimeout(() => {
    saveTimer = null;
    store.save();
  }, 200);
}

let listFrame = null;
function renderListSoon() {
  if (listFrame) return;
  listFrame = requestAnimationFrame(() => {
    listFrame = null;
    renderConvList();
  });
}

// ---------------------------------------------------------------------------
// Login

function toLogin(notice) {
  const wasUser = store.session ? store.session.username : "";
  if (stream) stream.stop();
  resetTyping();
  closeSettings();
  store.save(); // unread counts and the cursor wait for the next login
  store.clearSession();
  client.token = null;
  store.reset();
  groupsLoaded = false;
  show($("chat-view"), false);
  show($("login-view"), true);
  document.title = "Courier";
  const noticeNode = $("login-notice");
  noticeNode.textContent = notice || "";
  show(noticeNode, Boolean(notice));
  setError("login-error", "");
  if (wasUser) $("login-username").value = wasUser;
  $("login-password").value = "";
  (wasUser ? $("login-password") : $("login-username")).focus();
}

// The server forgets the token first (the page's socket closes with it); should it
// not be reached, the page forgets the token all the same.
async function logOut() {
  if (stream) stream.stop();
  try {
    await client.logout();
  } catch (err) {
    // offline, or the token already ended: nothing more can be done from here
  }
  toLogin("");
}

function readCredentials() {
  const username = $("login-username").value;
  const password = $("login-password").value;
  if (!USERNAME_RE.test(username)) {
    throw new Error("A username is 3 to 32 letters, digits, '_', '.' or '-'.");
  }
  if (password.length < 8) throw new Error("A password is at least 8 characters.");
  return { username, password };
}

async function doLogin(register) {
  setError("login-error", "");
  let creds;
  try {
    creds = readCredentials();
  } catch (err) {
    setError("login-error", err);
    return;
  }
  const buttons = [$("login-button"), $("register-button")];
  buttons.forEach((b) => (b.disabled = true));
  try {
    if (register) await client.register(creds.username, creds.password);
    const answer = await client.login(creds.username, creds.password);
    store.setSession({
      token: answer.token,
      user_id: answer.user_id,
      username: answer.username,
      expires_at: answer.expires_at,
    });
    $("login-password").value = "";
    await startApp();
  } catch (err) {
    if (err instanceof CourierError && err.status === 409) setError("login-error", "That username is taken.");
    else if (err instanceof CourierError && err.status === 401) setError("login-error", "Wrong username or password.");
    else if (err instanceof CourierError && err.status === 429)
      setError("login-error", "Too many attempts. Wait a minute and try again.");
    else setError("login-error", err);
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

// ---------------------------------------------------------------------------
// Start, catch up, receive

async function startApp() {
  store.load();
  client.token = store.session.token;
  groupsLoaded = false;
  show($("login-view"), false);
  show($("chat-view"), true);
  $("me-name").textContent = store.session.username;
  $("me-avatar").replaceWith(Object.assign(avatar(store.me, store.session.username), { id: "me-avatar" }));
  renderConvList();
  renderPane();
  renderConnState("connecting");
  const session = store.session;
  stream = openStream();
  try {
    await client.me();
    await loadConversations();
    await loadGroups();
    await stream.catchUp();
  } catch (err) {
    if (store.session !== session) return; // sent back to login meanwhile
    // The server is unreachable: show what is known, keep trying.
    stream.connectLater();
    if (store.active) selectConv(store.active);
    return;
  }
  if (store.session !== session) return;
  stream.connect();
  if (store.active && store.convs.has(store.active)) selectConv(store.active);
}

// The server's conversation list: every chat of the user (also those where it only
// sent, and groups without a message yet), its preview, read marker and unread count.
// The event view then keeps it current (Store.countArrival, moveReadMarker).
async function loadConversations() {
  let before = null;
  let rank = 0;
  for (let page = 0; page < CONVERSATION_PAGES; page += 1) {
    const answer = await client.conversations({ before, limit: 100 });
    for (const item of answer.conversations || []) store.applyServerConversation(item, (rank += 1));
    before = answer.next_before;
    if (!before || !(answer.conversations || []).length) break;
  }
  renderListSoon();
  saveSoon();
}

let conversationsTimer = null;
function reloadConversationsSoon() {
  if (conversationsTimer) return;
  conversationsTimer = setTimeout(() => {
    conversationsTimer = null;
    loadConversations()
      .then(() => {
        const conv = store.active ? store.convs.get(store.active) : null;
        if (conv) renderMessages(conv);
      })
      .catch(() => {});
  }, 300);
}

async function loadGroups() {
  // Every page: a group not listed would be taken for one this user left.
  const current = new Set();
  let before = null;
  do {
    const answer = await client.groups({ before, limit: 200 });
    for (const group of answer.groups || []) {
      const conv = store.conv(convKey("group", group.group_id));
      applyGroup(conv, group);
      current.add(conv.key);
    }
    before = (answer.groups || []).length ? answer.next_before : null;
  } while (before);
  // Groups this user left or was removed from elsewhere.
  for (const conv of [...store.convs.values()]) {
    if (conv.kind === "group" && !current.has(conv.key)) dropConv(conv);
  }
  groupsLoaded = true;
  renderListSoon();
  saveSoon();
}

function applyGroup(conv, group) {
  store.learnNames(group);
  conv.group = group;
  conv.name = group.name;
}

async function ensureGroup(conv) {
  if (conv.group || conv.fetchingGroup || conv.left) return;
  await refreshGroup(conv);
}

// The group as the server has it now (the last of overlapping fetches wins).
async function refreshGroup(conv) {
  const asked = (conv.groupAsked = (conv.groupAsked || 0) + 1);
  conv.fetchingGroup = true;
  try {
    const group = await client.getGroup(conv.id);
    if (asked !== conv.groupAsked || conv.left) return;
    applyGroup(conv, group);
    renderListSoon();
    if (store.active === conv.key) renderHeader(conv);
  } catch (err) {
    /* not a member any more, or offline: keep what is known */
  } finally {
    if (asked === conv.groupAsked) conv.fetchingGroup = false;
  }
}

// After each read of the log over HTTP (the stream's catch-up): what arrived while away in
// the conversation on screen goes under a "new messages" divider.
function showArrivedWhileAway() {
  const active = store.active ? store.convs.get(store.active) : null;
  if (active && onScreen(active) && markSeen(active)) {
    renderMessages(active);
    renderListSoon();
    saveSoon();
  }
}

// One entry of the event view (a pull's page or the socket). A pull counts what is
// unread even in the conversation on screen (it came while the page was away); the
// socket, only elsewhere.
function receive(event, { countUnread, live = false, first = false }) {
  if (!event || typeof event !== "object") return;
  if (event.type === "private" || event.type === "group") receiveMessage(event, { countUnread, live });
  else if (event.type === "member_added" || event.type === "member_removed" || event.type === "group_updated") {
    if (event.id) {
      if (store.seenEvents.has(event.id)) return;
      store.seenEvents.add(event.id);
    }
    receiveGroupChange(event, { live, first });
  } else if (event.type === "read") receiveRead(event);
  else if (event.type === "message_updated" || event.type === "message_deleted") receiveChange(event);
  // Pushed on the socket only, never in a pull: nothing stored, no cursor.
  else if (event.type === "typing") receiveTyping(event);
  else if (event.type === "presence") receivePresence(event);
  // Any other type is one this page does not know yet: passed over (as is an "error"
  // answering a typing frame the server refused, e.g. in a group just left).
}

function receiveMessage(msg, { countUnread, live }) {
  const mine = msg.from_user_id === store.me;
  const key = store.keyOfMessage(msg);
  // What they were typing has arrived: their stop may come a moment later, or not at all.
  if (!mine) showTyping(key, msg.from_user_id, false);
  // One's own send: sent from this window, it replaces its pending bubble (matched by
  // client_msg_id); sent from another window or device, it is shown like any other.
  let replaced = false;
  const known = store.convs.get(key);
  if (mine && msg.client_msg_id && known) {
    const before = known.pending.length;
    known.pending = known.pending.filter((p) => p.cid !== msg.client_msg_id);
    replaced = known.pending.length !== before;
  }
  const conv = store.append(msg, { live });
  if (!conv) {
    // Already shown (dedup by message id): the 201 came first.
    if (replaced && store.active === key) renderMessages(known);
    return;
  }
  if (conv.kind === "group") ensureGroup(conv);
  const looking = live && onScreen(conv);
  const counts = msg.seq != null ? store.countArrival(conv, msg) : !mine && countUnread;
  if (counts && !looking) {
    if (!conv.unread) conv.firstUnreadId = msg.id;
    conv.unread += 1;
  }
  if (looking) markReadSoon(conv);
  if (store.active === conv.key) renderMessages(conv, { stickToBottom: mine });
  renderListSoon();
  saveSoon();
}

// A read marker moved: this user's (another window or device read the conversation: its
// badge goes), or, as a receipt, another participant's (✓✓ / "read by N").
function receiveRead(event) {
  const where = event.conversation || {};
  const seq = Number(event.seq) || 0;
  let conv;
  if (event.user_id === store.me) {
    conv = store.convs.get(where.type === "group" ? convKey("group", where.group_id) : convKey("private", where.user_id));
    if (!conv) return;
    if (!store.moveReadMarker(conv, seq)) reloadConversationsSoon();
    renderListSoon();
    saveSoon();
  } else {
    if (where.type === "group") {
      conv = store.convs.get(convKey("group", where.group_id));
      if (conv) store.noteGroupRead(conv, event.user_id, seq);
    } else {
      conv = store.convs.get(convKey("private", event.user_id));
      if (conv) conv.peerReadSeq = Math.max(conv.peerReadSeq, seq);
    }
    if (conv) saveSoon();
  }
  if (conv && store.active === conv.key) renderMessages(conv);
}

// message_updated / message_deleted: the message changes in place, on every side.
function receiveChange(event) {
  const conv = store.applyChange(event);
  if (!conv) return;
  if (event.type === "message_deleted" && editing && editing.id === event.id) editing = null;
  if (store.active === conv.key) renderMessages(conv);
  renderListSoon();
  saveSoon();
}

// The conversation is what the user sees: open, its pane shown (on a phone the list
// covers it after Back), and the page in view.
function onScreen(conv) {
  return store.active === conv.key && document.body.classList.contains("pane-open") && !document.hidden;
}

// Tell the server (and so this user's other windows and devices) how far the
// conversation on screen is read: up to its newest message.
// What was on screen counts as read even if the user has moved on when the call goes.
function markReadSoon(conv) {
  if (conv.lastSeq <= conv.readSeq) return;
  conv.readTarget = Math.max(conv.readTarget || 0, conv.lastSeq);
  if (conv.markReadTimer) return;
  conv.markReadTimer = setTimeout(() => {
    conv.markReadTimer = null;
    const seq = conv.readTarget;
    if (seq <= conv.readSeq) return;
    (conv.kind === "group" ? client.markReadGroup(conv.id, seq) : client.markReadPrivate(conv.id, seq))
      .then((answer) => {
        store.moveReadMarker(conv, answer.read_seq);
        renderListSoon();
        saveSoon();
        if (conv.lastSeq > conv.readSeq && store.active === conv.key) markReadSoon(conv);
      })
      .catch(() => {
        /* offline, or no longer a member: the next look at the conversation asks again */
      });
  }, MARK_READ_AFTER_MS);
}

// A group's "read by N": every member's marker, asked when the group is opened (receipts
// keep it current in a group small enough to send them; a larger one is asked again
// whenever the page comes back into view).
async function loadReads(conv) {
  if (conv.kind !== "group" || conv.left) return;
  try {
    for (const read of await client.groupReads(conv.id)) {
      if (read.read_seq != null) store.noteGroupRead(conv, read.user_id, read.read_seq);
    }
    if (store.active === conv.key) renderMessages(conv);
  } catch (err) {
    /* offline, or no longer a member: the receipts that come are still shown */
  }
}

// member_added / member_removed / group_updated: the group's name and members, in the
// header and the list, follow at once. A user added sees the group appear; one removed
// by another keeps it, read-only, marked as left; one who left (here or in another
// window) sees it go.
function receiveGroupChange(event, { live, first }) {
  const key = convKey("group", event.group_id);
  let conv = store.convs.get(key);
  const aboutMe = event.user_id === store.me;
  const stamp = live ? Date.now() : (event.created_at || 0) * 1000;
  if (event.type === "group_updated") {
    if (!conv) {
      conv = store.conv(key);
      conv.lastTs = Math.max(conv.lastTs, stamp);
      if (live) ensureGroup(conv); // created with this user in it: its members
    }
    conv.name = event.name;
    if (conv.group) conv.group = { ...conv.group, name: event.name };
  } else if (event.type === "member_added") {
    if (aboutMe) {
      if (!conv) conv = store.conv(key);
      conv.left = null;
      conv.lastTs = Math.max(conv.lastTs, stamp);
      if (live || !conv.group) refreshGroup(conv); // its name and members
    } else if (conv && conv.group && !conv.group.member_ids.includes(event.user_id)) {
      conv.group = { ...conv.group, member_ids: [...conv.group.member_ids, event.user_id] };
    }
  } else if (event.type === "member_removed") {
    if (!conv) return;
    if (aboutMe) {
      if (event.by_user_id === store.me || first) {
        dropConv(conv);
        renderListSoon();
        saveSoon();
        return;
      }
      conv.left = { by: event.by_user_id };
      for (const pending of conv.pending) {
        if (pending.state !== "sending") {
          pending.state = "failed";
          pending.error = "You are not a member of this group.";
        }
      }
    }
    if (conv.group) conv.group = { ...conv.group, member_ids: conv.group.member_ids.filter((id) => id !== event.user_id) };
  }
  renderListSoon();
  if (store.active === key) {
    renderHeader(conv);
    renderMessages(conv);
  }
  saveSoon();
}

function dropConv(conv) {
  if (store.convs.get(conv.key) !== conv) return; // already gone
  store.convs.delete(conv.key);
  for (const id of conv.ids) store.seen.delete(id);
  if (store.active === conv.key) {
    store.active = null;
    renderPane();
  }
}

// The unread messages of a conversation now on screen: the count goes, a divider
// stays before the first of them until another conversation is opened.
function markSeen(conv) {
  const unread = conv.unread;
  if (unread) {
    conv.divider = conv.firstUnreadId || null;
    // What was seen on screen before is read, whether or not the server has answered
    // its POST yet (readTarget): the divider goes after it.
    conv.dividerSeq = Math.max(conv.readSeq, conv.readTarget || 0);
    conv.unread = 0;
    conv.firstUnreadId = null;
  }
  markReadSoon(conv);
  return Boolean(unread);
}

// ---------------------------------------------------------------------------
// Sidebar

function renderConvList() {
  const list = $("conv-list");
  const convs = store.sortedConvs();
  list.replaceChildren(
    ...convs.map((conv) => {
      const title = store.title(conv);
      const isGroup = conv.kind === "group";
      let preview = conv.preview || (isGroup ? "Group" : "");
      const typers = store.typersOf(conv.key);
      if (conv.left) preview = "You are no longer in this group";
      else if (typers.length) preview = isGroup ? typingText(typers) : "typing…";
      else if (conv.preview && conv.previewFrom === store.me) preview = `You: ${conv.preview}`;
      else if (conv.preview && isGroup && conv.previewFrom) preview = `${store.nameOf(conv.previewFrom)}: ${conv.preview}`;
      const item = el(
        "li",
        {
          className: `conv${conv.key === store.active ? " active" : ""}${conv.unread ? " has-unread" : ""}${
            conv.left ? " left" : ""
          }`,
          dataset: { key: conv.key, kind: conv.kind, id: conv.id },
          tabindex: "0",
          role: "button",
          "aria-current": conv.key === store.active ? "true" : null,
          onclick: () => selectConv(conv.key),
          onkeydown: (e) => {
            if (e.key === "Enter" || e.key === " ") {
              e.preventDefault();
              selectConv(conv.key);
            }
          },
        },
        convAvatar(conv, title),
        el(
          "div",
          { className: "conv-text" },
          el("div", { className: "conv-title", text: isGroup ? `# ${title}` : title, title }),
          el("div", { className: `conv-preview${typers.length && !conv.left ? " typing" : ""}`, text: preview }),
        ),
        conv.unread
          ? el("span", { className: "badge", "aria-label": `${conv.unread} unread`, text: conv.unread > 99 ? "99+" : conv.unread })
          : null,
      );
      return item;
    }),
  );
  show($("conv-empty"), convs.length === 0);
  const total = store.totalUnread();
  document.title = total ? `(${total}) Courier` : "Courier";
  subscribePresence(); // the people listed may have changed
}

// A conversation's avatar: a private chat's shows a green dot while the other user is online.
function convAvatar(conv, title) {
  if (conv.kind === "group") return avatar(conv.id, conv.name || "#", "group");
  const online = conv.id !== store.me && store.isOnline(conv.id);
  const node = avatar(conv.id, title, online ? "online" : "");
  if (online) node.title = "online";
  return node;
}

async function startPrivateChat(event) {
  event.preventDefault();
  setError("sidebar-error", "");
  const input = $("new-chat-username");
  const username = input.value.trim();
  if (!username) return;
  try {
    const user = await client.findUser(username);
    store.rememberName(user.user_id, user.username);
    const conv = store.conv(convKey("private", user.user_id));
    if (!conv.lastTs) conv.lastTs = Date.now();
    input.value = "";
    saveSoon();
    selectConv(conv.key);
    $("composer-input").focus();
  } catch (err) {
    if (err instanceof CourierError && err.status === 404) setError("sidebar-error", `No user named “${username}”.`);
    else setError("sidebar-error", err);
  }
}

async function createGroup(event) {
  event.preventDefault();
  setError("sidebar-error", "");
  const input = $("new-group-name");
  const name = input.value.trim();
  if (!name) return;
  try {
    const group = await client.createGroup(name);
    const conv = store.conv(convKey("group", group.group_id));
    applyGroup(conv, group);
    conv.lastTs = Date.now();
    conv.history = "loaded"; // a new group has no history
    input.value = "";
    saveSoon();
    selectConv(conv.key);
    $("add-member-username").focus();
  } catch (err) {
    setError("sidebar-error", err);
  }
}

// ---------------------------------------------------------------------------
// Conversation pane

function selectConv(key) {
  const conv = store.convs.get(key);
  if (!conv) return;
  const changed = store.active !== key;
  store.active = key;
  if (changed) {
    conv.divider = null;
    conv.dividerSeq = null;
    editing = null;
    menuFor = null;
    stopTyping();
  }
  markSeen(conv);
  document.body.classList.add("pane-open");
  closeMenu();
  setError("conv-error", "");
  renderPane({ resetScroll: changed });
  renderListSoon();
  saveSoon();
  if (conv.kind === "group") ensureGroup(conv);
  loadReads(conv);
  // A group this user is no longer in keeps what it showed: the history calls would refuse.
  if (conv.history === "none" && !conv.left) loadHistory(conv, { first: true });
}

function renderPane({ resetScroll = true } = {}) {
  const conv = store.active ? store.convs.get(store.active) : null;
  show($("empty-pane"), !conv);
  show($("conv-pane"), Boolean(conv));
  if (!conv) {
    document.body.classList.remove("pane-open");
    return;
  }
  renderHeader(conv);
  renderMessages(conv, { stickToBottom: resetScroll });
}

function renderHeader(conv) {
  const title = store.title(conv);
  $("conv-title").textContent = conv.kind === "group" ? `# ${title}` : title;
  let sub = "";
  if (conv.kind === "group") {
    const members = conv.group ? conv.group.member_ids : [];
    const names = members.map((id) => (id === store.me ? "you" : store.nameOf(id)));
    sub = members.length ? `${members.length} member${members.length === 1 ? "" : "s"}: ${names.join(", ")}` : "";
  } else if (conv.id === store.me) {
    sub = "Notes to yourself";
  } else if (!store.knowsName(conv.id)) {
    sub = "This browser does not know their username yet: start a chat with them by username to name it.";
  } else {
    sub = presenceText(store.presence.get(conv.id)) || "Private chat";
  }
  if (conv.kind === "group" && conv.left) {
    const by = conv.left.by;
    sub = by && by !== store.me ? `${store.nameOf(by)} removed you from this group` : "You left this group";
  }
  $("conv-sub").textContent = sub;
  $("conv-avatar").replaceWith(Object.assign(convAvatar(conv, title), { id: "conv-avatar" }));
  renderTyping(conv);
  const tools = conv.kind === "group" && !conv.left;
  show($("group-tools"), tools);
  show($("menu-button"), tools);
  if (!tools) closeMenu();
  // Renaming is the owner's.
  const owner = tools && conv.group && conv.group.owner_id === store.me;
  show($("rename-form"), Boolean(owner));
  // A group this user was removed from: its history stays, read-only.
  show($("composer"), !conv.left);
  show($("left-notice"), Boolean(conv.left));
}

async function loadHistory(conv, { first }) {
  if (conv.history === "loading" || conv.loadingOlder) return;
  if (first) conv.history = "loading";
  else conv.loadingOlder = true;
  if (store.active === conv.key) $("history-status").textContent = "Loading…";
  const box = $("messages");
  const fromBottom = box.scrollHeight - box.scrollTop;
  try {
    const before = first ? null : conv.nextBefore;
    const page =
      conv.kind === "group"
        ? await client.groupHistory(conv.id, { before, limit: 50 })
        : await client.privateHistory(conv.id, { before, limit: 50 });
    store.mergeHistory(conv, page, { first });
    conv.history = "loaded";
  } catch (err) {
    if (first) conv.history = "none";
    if (store.active === conv.key) setError("conv-error", `Could not load history: ${err.message}`);
  } finally {
    conv.loadingOlder = false;
  }
  renderListSoon();
  if (store.active !== conv.key) return;
  renderMessages(conv, { stickToBottom: first });
  if (!first) box.scrollTop = box.scrollHeight - fromBottom; // keep the reader's place
  maybeLoadOlder();
}

function maybeLoadOlder() {
  const conv = store.active ? store.convs.get(store.active) : null;
  if (!conv || conv.history !== "loaded" || !conv.nextBefore || conv.loadingOlder || conv.left) return;
  const box = $("messages");
  if (box.scrollTop <= LOAD_OLDER_PX || box.scrollHeight <= box.clientHeight) loadHistory(conv, { first: false });
}

function renderMessages(conv, { stickToBottom = false } = {}) {
  const box = $("messages");
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < NEAR_BOTTOM_PX;
  const list = $("message-list");
  let prev = null;
  let prevDay = null;
  // A pending bubble stays where Send was pressed: after the message that
  // was last then (or at the end when that one is not shown).
  const items = [];
  const pendingAfter = new Map();
  const known = new Set(conv.msgs.map((m) => m.id));
  const atEnd = [];
  for (const pending of conv.pending) {
    if (pending.afterId === BEFORE_ALL) items.push(pendingItem(conv, pending));
    else if (pending.afterId && known.has(pending.afterId)) {
      if (!pendingAfter.has(pending.afterId)) pendingAfter.set(pending.afterId, []);
      pendingAfter.get(pending.afterId).push(pending);
    } else atEnd.push(pending);
  }
  const dividerId = dividerBefore(conv);
  for (const msg of conv.msgs) {
    const day = dayOf(msg.created_at);
    if (day !== prevDay) {
      items.push(el("li", { className: "day", text: day }));
      prevDay = day;
      prev = null;
    }
    if (dividerId && msg.id === dividerId) {
      items.push(el("li", { className: "divider", role: "separator", text: "New messages" }));
      prev = null;
    }
    const continued = prev && prev.from_user_id === msg.from_user_id && msg.created_at - prev.created_at < 300;
    items.push(messageItem(conv, msg, { continued }));
    prev = msg;
    for (const pending of pendingAfter.get(msg.id) || []) {
      items.push(pendingItem(conv, pending));
      prev = null;
    }
  }
  for (const pending of atEnd) items.push(pendingItem(conv, pending));
  const focus = focusWithin(list);
  list.replaceChildren(...items);
  restoreFocus(list, focus);

  let status = "";
  if (conv.history === "loading") status = "Loading…";
  else if (conv.loadingOlder) status = "Loading older messages…";
  else if (conv.history === "loaded" && !conv.nextBefore) status = conv.msgs.length ? "Beginning of the conversation" : "No messages yet. Say hello!";
  $("history-status").textContent = status;

  if (stickToBottom || nearBottom) box.scrollTop = box.scrollHeight;
}

// The list is drawn anew on every change: what had the focus in it (the edit box with
// its caret, a message's menu button) gets it back.
function focusWithin(list) {
  const node = document.activeElement;
  if (!node || !list.contains(node)) return null;
  const item = node.closest("li.msg");
  const focus = { id: item ? item.dataset.id : null, role: node.dataset.role || null };
  if (node.id === "edit-input") Object.assign(focus, { start: node.selectionStart, end: node.selectionEnd });
  return focus;
}

function restoreFocus(list, focus) {
  if (!focus || !focus.id || !focus.role) return;
  const item = list.querySelector(`li.msg[data-id="${CSS.escape(focus.id)}"]`);
  const node = item && item.querySelector(`[data-role="${focus.role}"]`);
  if (!node) return;
  node.focus();
  if (focus.start != null) node.setSelectionRange(focus.start, focus.end);
}

// Where the "new messages" divider stands: before the first message from others after
// the read marker the conversation had when it was opened.
function dividerBefore(conv) {
  if (conv.dividerSeq == null) return conv.divider;
  const first = conv.msgs.find((m) => m.seq > conv.dividerSeq && m.from_user_id !== store.me);
  return first ? first.id : null;
}

function messageItem(conv, msg, { continued }) {
  const mine = msg.from_user_id === store.me;
  const showAuthor = !continued && conv.kind === "group" && !mine;
  const isEditing = editing && editing.id === msg.id && !msg.deleted;
  let body;
  if (msg.deleted) body = el("span", { className: "content deleted", text: DELETED_PREVIEW });
  else if (isEditing) body = editForm(msg);
  else body = el("span", { className: "content", text: msg.content });
  return el(
    "li",
    {
      className: `msg ${mine ? "mine" : "theirs"}${continued ? " continued" : ""}${msg.deleted ? " deleted" : ""}`,
      dataset: { id: msg.id, from: msg.from_user_id },
    },
    showAuthor ? el("div", { className: "author", text: store.nameOf(msg.from_user_id) }) : null,
    el(
      "div",
      { className: "bubble" },
      body,
      msg.edited_at && !msg.deleted
        ? el("span", { className: "edited", title: new Date(msg.edited_at * 1000).toLocaleString(), text: "edited" })
        : null,
      el("time", {
        className: "time",
        datetime: new Date(msg.created_at * 1000).toISOString(),
        title: new Date(msg.created_at * 1000).toLocaleString(),
        text: timeOf(msg.created_at),
      }),
      receiptOf(conv, msg),
    ),
    messageMenu(conv, msg),
  );
}

// ✓ sent, ✓✓ read (private); "read by N" (groups).
function receiptOf(conv, msg) {
  if (msg.from_user_id !== store.me || msg.seq == null || msg.deleted) return null;
  if (conv.kind === "private") {
    if (conv.id === store.me) return null; // notes to oneself
    const read = msg.seq <= conv.peerReadSeq;
    return el("span", { className: `receipt${read ? " read" : ""}`, title: read ? "Read" : "Sent", text: read ? "✓✓" : "✓" });
  }
  const n = store.readBy(conv, msg.seq);
  return el("span", { className: `receipt${n ? " read" : ""}`, title: n ? `Read by ${n}` : "Sent", text: n ? `✓ read by ${n}` : "✓" });
}

// ---------------------------------------------------------------------------
// Edit and delete

let editing = null; // {id, draft, error}: the message being edited, its text so far
let menuFor = null; // the message whose menu is open
let deleteArmed = null; // the message whose Delete was pressed once

function mayEdit(msg) {
  return msg.from_user_id === store.me && !msg.deleted && Date.now() / 1000 - msg.created_at < EDIT_WINDOW_SECONDS;
}

function mayDelete(conv, msg) {
  if (msg.deleted) return false;
  if (msg.from_user_id === store.me) return true;
  return conv.kind === "group" && !conv.left && Boolean(conv.group) && conv.group.owner_id === store.me;
}

function messageMenu(conv, msg) {
  if (conv.left) return null; // the history of a group one was removed from is read-only
  const edit = mayEdit(msg);
  const del = mayDelete(conv, msg);
  if ((!edit && !del) || (editing && editing.id === msg.id)) return null;
  const open = menuFor === msg.id;
  const toggle = el("button", {
    type: "button",
    className: "ghost msg-menu-button",
    dataset: { role: "menu" },
    "aria-label": "Message menu",
    "aria-haspopup": "true",
    "aria-expanded": open ? "true" : "false",
    text: "⋯",
    onclick: () => {
      menuFor = open ? null : msg.id;
      deleteArmed = null;
      renderMessages(conv);
      const first = menuFor && $("message-list").querySelector(`li.msg[data-id="${CSS.escape(msg.id)}"] .msg-menu-items button`);
      if (first) first.focus(); // from the keyboard, the menu's first choice
    },
  });
  if (!open) return el("div", { className: "msg-menu" }, toggle);
  const armed = deleteArmed === msg.id;
  return el(
    "div",
    {
      className: "msg-menu open",
      onkeydown: (e) => {
        if (e.key !== "Escape") return;
        e.preventDefault();
        closeMessageMenu(conv, msg);
      },
    },
    toggle,
    el(
      "div",
      { className: "msg-menu-items" },
      edit
        ? el("button", {
            type: "button",
            className: "edit-action",
            dataset: { role: "edit" },
            text: "Edit",
            onclick: () => {
              menuFor = null;
              editing = { id: msg.id, draft: msg.content, error: "" };
              renderMessages(conv);
              const input = $("edit-input");
              if (input) {
                input.focus();
                input.setSelectionRange(input.value.length, input.value.length);
              }
            },
          })
        : null,
      del
        ? el("button", {
            type: "button",
            className: `delete-action danger${armed ? " armed" : ""}`,
            dataset: { role: "delete" },
            text: armed ? "Really delete?" : "Delete",
            onclick: () => (armed ? deleteMessage(conv, msg) : armDelete(conv, msg)),
          })
        : null,
    ),
  );
}

function closeMessageMenu(conv, msg) {
  menuFor = null;
  deleteArmed = null;
  renderMessages(conv);
  const button = $("message-list").querySelector(`li.msg[data-id="${CSS.escape(msg.id)}"] .msg-menu-button`);
  if (button) button.focus();
}

// Two clicks, without a native dialog: the first arms Delete.
function armDelete(conv, msg) {
  deleteArmed = msg.id;
  renderMessages(conv);
  setTimeout(() => {
    if (deleteArmed !== msg.id) return;
    deleteArmed = null;
    if (store.active === conv.key) renderMessages(conv);
  }, 4000);
}

function editForm(msg) {
  const input = el("textarea", {
    id: "edit-input",
    rows: String(Math.min(8, Math.max(2, editing.draft.split("\n").length))),
    dataset: { role: "edit-input" },
    "aria-label": "Edit the message",
  });
  input.value = editing.draft;
  input.addEventListener("input", () => {
    editing.draft = input.value;
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      saveEdit(msg);
    } else if (e.key === "Escape") cancelEdit();
  });
  return el(
    "form",
    {
      className: "edit-form",
      onsubmit: (e) => {
        e.preventDefault();
        saveEdit(msg);
      },
    },
    input,
    el(
      "div",
      { className: "edit-actions" },
      el("span", { className: "error", text: editing.error || "" }),
      el("button", { type: "button", className: "link", text: "Cancel", onclick: cancelEdit }),
      el("button", { type: "submit", className: "link", text: "Save" }),
    ),
  );
}

function cancelEdit() {
  editing = null;
  const conv = store.active ? store.convs.get(store.active) : null;
  if (conv) renderMessages(conv);
}

async function saveEdit(msg) {
  const conv = store.active ? store.convs.get(store.active) : null;
  if (!conv || !editing || editing.id !== msg.id) return;
  const content = editing.draft;
  if (content === msg.content) {
    cancelEdit();
    return;
  }
  if (!content.trim()) {
    editing.error = "A message cannot be empty: delete it instead.";
    renderMessages(conv);
    return;
  }
  if (lengthOf(content) > contentLimit) {
    editing.error = `Too long: at most ${contentLimit} characters.`;
    renderMessages(conv);
    return;
  }
  try {
    const edited = await client.editMessage(msg.id, content);
    store.applyChange({ ...edited, type: "message_updated" });
    if (editing && editing.id === msg.id) editing = null;
  } catch (err) {
    if (!editing || editing.id !== msg.id) return;
    if (err instanceof CourierError && err.code === "edit_window_closed") editing.error = "Too late to edit this message.";
    else editing.error = err.message;
  }
  if (store.active === conv.key) renderMessages(conv);
  renderListSoon();
  saveSoon();
}

async function deleteMessage(conv, msg) {
  menuFor = null;
  deleteArmed = null;
  try {
    await client.deleteMessage(msg.id);
    store.applyChange({
      type: "message_deleted",
      id: msg.id,
      seq: msg.seq,
      group_id: msg.group_id,
      from_user_id: msg.from_user_id,
      to_user_id: msg.to_user_id,
    });
  } catch (err) {
    setError("conv-error", `Could not delete the message: ${err.message}`);
  }
  if (store.active === conv.key) renderMessages(conv);
  renderListSoon();
  saveSoon();
}

const PENDING_LABEL = { failed: "not sent", waiting: "waiting for the connection…" };

function pendingItem(conv, pending) {
  const failed = pending.state === "failed";
  const stuck = failed || pending.state === "waiting";
  return el(
    "li",
    { className: `msg mine pending ${pending.state}`, dataset: { clientId: pending.cid } },
    el(
      "div",
      { className: "bubble" },
      el("span", { className: "content", text: pending.content }),
      el("span", { className: "time", text: PENDING_LABEL[pending.state] || "sending…" }),
    ),
    stuck
      ? el(
          "div",
          { className: "pending-actions" },
          el("span", { className: "error", text: pending.error || "" }),
          failed
            ? el("button", { type: "button", className: "link", text: "Retry", onclick: () => queueSend(conv, pending) })
            : null,
          el("button", {
            type: "button",
            className: "link",
            text: "Discard",
            onclick: () => {
              conv.pending = conv.pending.filter((p) => p !== pending);
              renderMessages(conv);
            },
          }),
        )
      : null,
  );
}

// ---------------------------------------------------------------------------
// Sending

// Characters as the server counts them (code points, not UTF-16 units).
function lengthOf(text) {
  return Array.from(text).length;
}

function submitComposer(event) {
  if (event) event.preventDefault();
  const conv = store.active ? store.convs.get(store.active) : null;
  const input = $("composer-input");
  const content = input.value;
  if (!conv || conv.left || !content.trim()) return;
  if (lengthOf(content) > contentLimit) {
    renderCounter(); // too long: not sent, the text stays to be shortened
    return;
  }
  stopTyping(); // what was being typed is sent
  input.value = "";
  autoGrow();
  renderCounter();
  // Where the bubble stands: after the last message shown, or first when
  // none is shown (also while the history is still loading: older messages
  // it brings sort before by seq, see Store.placeOwn/mergeHistory).
  const last = conv.msgs[conv.msgs.length - 1];
  const afterId = last ? last.id : BEFORE_ALL;
  const pending = { cid: newClientMsgId(), content, state: "queued", afterId };
  conv.pending.push(pending);
  renderMessages(conv, { stickToBottom: true });
  pump(conv);
}

// A conversation's sends go one at a time, in the order they were written, so that
// the server numbers them (seq) in that order: a burst typed with Enter shows as typed.
function pump(conv) {
  if (conv.sending) return;
  const next = conv.pending.find((p) => p.state === "queued");
  if (!next) return;
  conv.sending = true;
  sendPending(conv, next).finally(() => {
    conv.sending = false;
    pump(conv);
  });
}

function queueSend(conv, pending) {
  pending.state = "queued";
  pending.error = "";
  if (store.active === conv.key) renderMessages(conv);
  pump(conv);
}

// The socket is back: every send that waited for it (or failed on a passing failure)
// goes again, in order, with its own client_msg_id.
function resendWaiting() {
  for (const conv of store.convs.values()) {
    if (conv.left) continue;
    let any = false;
    for (const pending of conv.pending) {
      if (pending.state === "waiting" || (pending.state === "failed" && pending.passing)) {
        pending.state = "queued";
        pending.error = "";
        any = true;
      }
    }
    if (!any) continue;
    if (store.active === conv.key) renderMessages(conv);
    pump(conv);
  }
}

// A send that met a passing failure (the network, 503, 409 send_in_progress, 429) is
// sent again by itself, with the same client_msg_id, so it is delivered once however
// many attempts it takes: while the socket is up, after these waits, then "not sent"
// (with Retry); while the socket is down, when it comes back.
const RESEND_AFTER_MS = [500, 1000, 2000, 4000];

// True when the message is in place: the 201, or its echo in the event view (which
// took the pending bubble away) came first.
const delivered = (conv, pending) => !conv.pending.includes(pending);

async function sendPending(conv, pending) {
  pending.state = "sending";
  pending.error = "";
  if (store.active === conv.key) renderMessages(conv);
  for (let attempt = 0; ; attempt += 1) {
    try {
      // The same client_msg_id on a retry makes the send idempotent.
      const msg =
        conv.kind === "group"
          ? await client.sendGroup(conv.id, pending.content, { clientMsgId: pending.cid })
          : await client.sendPrivate(conv.id, pending.content, { clientMsgId: pending.cid });
      conv.pending = conv.pending.filter((p) => p !== pending);
      // The 201 answer has no cursor: it is shown, never used to move the cursor.
      const placed = store.placeOwn(msg, pending.afterId);
      if (msg.seq != null) store.countArrival(conv, msg);
      if (!placed && store.active === conv.key) renderMessages(conv);
      else if (store.active === conv.key) renderMessages(conv, { stickToBottom: true });
      renderListSoon();
      saveSoon();
      return;
    } catch (err) {
      if (err instanceof CourierError && err.status === 401) return; // back to login already
      if (delivered(conv, pending)) return; // its echo came while this attempt failed
      pending.passing = isRetryable(err);
      if (pending.passing && stream.state !== "online" && !stream.stopped) {
        // Offline: it goes when the socket is back (resendWaiting).
        pending.state = "waiting";
        pending.error = "";
        if (store.active === conv.key) renderMessages(conv);
        return;
      }
      if (pending.passing && attempt < RESEND_AFTER_MS.length) {
        await new Promise((resolve) => setTimeout(resolve, RESEND_AFTER_MS[attempt]));
        if (delivered(conv, pending)) return; // discarded, logged out, or its echo came
        continue;
      }
      pending.state = "failed";
      if (err instanceof CourierError && err.status === 429) pending.error = "Sending too fast.";
      else if (err instanceof CourierError && err.status === 403) pending.error = "You are not a member of this group.";
      else if (err instanceof CourierError && err.code === "content_too_long") {
        const limit = Number((/(\d+)/.exec(err.message) || [])[1]);
        if (limit > 0) contentLimit = limit;
        pending.error = `Too long: at most ${contentLimit} characters.`;
        renderCounter();
      } else pending.error = err.message;
      if (store.active === conv.key) renderMessages(conv);
      return;
    }
  }
}

// The counter shows near the limit; past it Send is refused.
function renderCounter() {
  const n = lengthOf($("composer-input").value);
  const counter = $("char-counter");
  const over = n > contentLimit;
  counter.textContent = over ? `${n} / ${contentLimit} — ${n - contentLimit} too many` : `${n} / ${contentLimit}`;
  counter.classList.toggle("over", over);
  show(counter, n >= Math.floor(contentLimit * COUNTER_FROM));
  $("send-button").disabled = over;
  $("composer-input").setAttribute("aria-invalid", over ? "true" : "false");
}

function autoGrow() {
  const input = $("composer-input");
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 180)}px`;
}

// ---------------------------------------------------------------------------
// Groups

async function addMember(event) {
  event.preventDefault();
  const conv = store.active ? store.convs.get(store.active) : null;
  if (!conv || conv.kind !== "group") return;
  setError("conv-error", "");
  const input = $("add-member-username");
  const username = input.value.trim();
  if (!username) return;
  try {
    const user = await client.findUser(username);
    store.rememberName(user.user_id, user.username);
    applyGroup(conv, await client.addMember(conv.id, user.user_id));
    // The member_added event may have shown them already, and the next name be under way.
    if (input.value.trim() === username) input.value = "";
    closeMenu();
    renderHeader(conv);
  } catch (err) {
    if (err instanceof CourierError && err.status === 404) setError("conv-error", `No user named “${username}”.`);
    else setError("conv-error", err);
  }
}

async function leaveGroup() {
  const conv = store.active ? store.convs.get(store.active) : null;
  if (!conv || conv.kind !== "group") return;
  const button = $("leave-button");
  // Two clicks, without a native dialog: the first arms the button.
  if (!button.classList.contains("armed")) {
    button.classList.add("armed");
    button.textContent = "Really leave?";
    setTimeout(() => {
      button.classList.remove("armed");
      button.textContent = "Leave";
    }, 4000);
    return;
  }
  button.classList.remove("armed");
  button.textContent = "Leave";
  try {
    await client.removeMember(conv.id, store.me);
    dropConv(conv);
    renderConvList();
    saveSoon();
  } catch (err) {
    setError("conv-error", err);
  }
}

async function renameGroup(event) {
  event.preventDefault();
  const conv = store.active ? store.convs.get(store.active) : null;
  if (!conv || conv.kind !== "group") return;
  setError("conv-error", "");
  const input = $("rename-input");
  const name = input.value.trim();
  if (!name) return;
  try {
    applyGroup(conv, await client.renameGroup(conv.id, name));
    input.value = "";
    closeMenu();
    renderHeader(conv);
    renderListSoon();
    saveSoon();
  } catch (err) {
    if (err instanceof CourierError && err.status === 403) setError("conv-error", "Only the group's owner can rename it.");
    else setError("conv-error", err);
  }
}

// A group this user was removed from stays, read-only, until closed here.
function closeLeftConv() {
  const conv = store.active ? store.convs.get(store.active) : null;
  if (!conv || !conv.left) return;
  dropConv(conv);
  renderConvList();
  saveSoon();
}

// On a narrow screen the group's controls are in a menu, so that its name and member
// count keep the header's width.
function toggleMenu() {
  const open = !$("conv-header").classList.contains("menu-open");
  $("conv-header").classList.toggle("menu-open", open);
  $("menu-button").setAttribute("aria-expanded", open ? "true" : "false");
}

function closeMenu() {
  $("conv-header").classList.remove("menu-open");
  $("menu-button").setAttribute("aria-expanded", "false");
}

// ---------------------------------------------------------------------------
// Presence: who of the people listed is online (pushed on the socket, stored nowhere)

function activeConv() {
  return store.active ? store.convs.get(store.active) || null : null;
}

let presenceWatched = null; // the ids this socket was asked to watch, as a key; null: none yet

// The other users of the private chats listed, most recent first (at most 200): asked
// again whenever that set changes (not its order), and on every new socket, since a
// subscription belongs to the socket that sent it.
function subscribePresence({ force = false } = {}) {
  if (!store.session) return;
  const ids = store.presenceIds();
  const key = [...ids].sort().join(",");
  if (!force && key === presenceWatched) return;
  if (!ids.length && !presenceWatched) {
    presenceWatched = key; // nobody to watch, and nothing watched on this socket yet
    return;
  }
  if (stream && stream.send({ type: "presence_subscribe", user_ids: ids })) presenceWatched = key;
}

// {"type": "presence", "user_id", "status", "last_seen"}: once per id when subscribed, then
// on every change. A user who hides its presence comes as offline, never seen.
function receivePresence(frame) {
  if (!frame.user_id) return;
  store.setPresence(frame);
  renderListSoon();
  const conv = activeConv();
  if (conv && conv.kind === "private" && conv.id === frame.user_id) renderHeader(conv);
}

// "online", "last seen just now / 5 min ago / 3 h ago / on 4 Mar", or "offline" (never
// seen, or hidden). Empty while nothing is known.
function presenceText(presence) {
  if (!presence) return "";
  if (presence.status === "online") return "online";
  if (presence.last_seen == null) return "offline";
  const ago = Date.now() / 1000 - presence.last_seen; // the server's clock: a little off at worst
  if (ago < 60) return "last seen just now";
  if (ago < 3600) return `last seen ${Math.floor(ago / 60)} min ago`;
  if (ago < 86_400) return `last seen ${Math.floor(ago / 3600)} h ago`;
  const when = new Date(presence.last_seen * 1000);
  const options = { day: "numeric", month: "short" };
  if (when.getFullYear() !== new Date().getFullYear()) options.year = "numeric";
  return `last seen on ${when.toLocaleDateString([], options)}`;
}

// The socket is gone: the server forgets its subscription and the typing it sent, and the
// stops pushed meanwhile are lost.
function socketLost() {
  presenceWatched = null;
  typingOut.to = null;
  typingOut.told.clear();
  forgetTyping();
}

// ---------------------------------------------------------------------------
// Typing: "bob is typing…" under the header, and this user's own typing told to others

// {"type": "typing", "user_id", "to_user_id" | "group_id", "state"}. The server sends the
// stop itself when a start is not repeated within 6 s (a lost stop, a closed window), so an
// indicator needs no timer here while the socket is up. (A repeated start only re-arms the
// server's expiry and is not pushed again: a timer here could not tell a long message
// being typed from a stop that was lost.)
// Each start is pushed again while its typer keeps typing (every few seconds): an
// indicator with no start for TYPING_LOCAL_EXPIRY_MS ends here too, should its stop be lost.
const TYPING_LOCAL_EXPIRY_MS = 7000;
const typingTimers = new Map(); // "key|user" -> timer

function receiveTyping(event) {
  if (!event.user_id || event.user_id === store.me) return;
  const key = event.group_id ? convKey("group", event.group_id) : convKey("private", event.user_id);
  const starting = event.state === "start";
  const timerKey = `${key}|${event.user_id}`;
  clearTimeout(typingTimers.get(timerKey));
  typingTimers.delete(timerKey);
  if (starting) {
    typingTimers.set(
      timerKey,
      setTimeout(() => {
        typingTimers.delete(timerKey);
        showTyping(key, event.user_id, false);
      }, TYPING_LOCAL_EXPIRY_MS),
    );
  }
  showTyping(key, event.user_id, starting);
}

function showTyping(key, userId, typing) {
  if (!store.setTyping(key, userId, typing)) return;
  renderListSoon();
  if (store.active === key) renderTyping(store.convs.get(key));
}

function forgetTyping() {
  if (!store.typing.size) return;
  store.typing.clear();
  renderListSoon();
  renderTyping(activeConv());
}

// "bob is typing…", "bob and carol are typing…", "bob and 2 others are typing…".
function typingText(userIds) {
  const names = userIds.map((id) => store.nameOf(id));
  if (names.length === 0) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return `${names[0]} and ${names.length - 1} others are typing…`;
}

function renderTyping(conv) {
  const line = $("typing-line");
  const text = conv && !conv.left ? typingText(store.typersOf(conv.key)) : "";
  line.textContent = text;
  show(line, Boolean(text));
}

// This user's typing, told to the other side: a start when typing begins and again every
// TYPING_REPEAT_MS while it goes on, a stop on send, on leaving the box, on another
// conversation and after TYPING_IDLE_MS without a key. At most one frame a second leaves
// the page (the server would drop more, silently): one that comes too soon waits its turn.
const typingOut = {
  to: null, // the conversation told "start" last, and not "stop" since
  startedAt: 0,
  idleTimer: null,
  queue: [], // frames waiting for their turn, oldest first: {conv, state}
  told: new Map(), // conversation key -> the state last sent there on this socket
  lastFrameAt: 0,
  queueTimer: null,
};

// Not in a group this user was removed from (read-only), not in its notes to itself.
function mayType(conv) {
  return Boolean(conv) && !conv.left && !(conv.kind === "private" && conv.id === store.me);
}

// A key in the composer (its input event).
function noteTyping() {
  const conv = activeConv();
  if (!mayType(conv) || !$("composer-input").value.trim()) {
    stopTyping(); // emptied: nothing is being written any more
    return;
  }
  if (typingOut.to && typingOut.to !== conv) stopTyping();
  clearTimeout(typingOut.idleTimer);
  typingOut.idleTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
  if (typingOut.to === conv && Date.now() - typingOut.startedAt < TYPING_REPEAT_MS) return;
  typingOut.to = conv;
  typingOut.startedAt = Date.now();
  queueTyping(conv, "start");
}

function stopTyping() {
  clearTimeout(typingOut.idleTimer);
  typingOut.idleTimer = null;
  const conv = typingOut.to;
  if (!conv) return;
  typingOut.to = null;
  queueTyping(conv, "stop");
}

function queueTyping(conv, state) {
  const queue = typingOut.queue;
  const waiting = queue.filter((f) => f.conv === conv).pop();
  if (state === "start") {
    if (!waiting || waiting.state !== "start") queue.push({ conv, state });
  } else {
    // A start that has not left yet is taken back; a stop goes only after a start that did.
    if (waiting && waiting.state === "start") queue.splice(queue.indexOf(waiting), 1);
    const last = queue.filter((f) => f.conv === conv).pop();
    if ((last ? last.state : typingOut.told.get(conv.key)) === "start") queue.push({ conv, state });
  }
  flushTyping();
}

function flushTyping() {
  if (typingOut.queueTimer || !typingOut.queue.length) return;
  const wait = typingOut.lastFrameAt + TYPING_FRAME_GAP_MS - Date.now();
  if (wait > 0) {
    typingOut.queueTimer = setTimeout(() => {
      typingOut.queueTimer = null;
      flushTyping();
    }, wait);
    return;
  }
  const { conv, state } = typingOut.queue.shift();
  const frame = { type: "typing", state };
  frame[conv.kind === "group" ? "group_id" : "to_user_id"] = conv.id;
  // Offline the frame is dropped: the server ended this user's typing with the socket.
  if (stream && stream.send(frame)) {
    typingOut.lastFrameAt = Date.now();
    typingOut.told.set(conv.key, state);
  }
  flushTyping();
}

function resetTyping() {
  clearTimeout(typingOut.idleTimer);
  clearTimeout(typingOut.queueTimer);
  Object.assign(typingOut, { to: null, idleTimer: null, queue: [], queueTimer: null });
  typingOut.told.clear();
}

// ---------------------------------------------------------------------------
// Settings: whether others see this user's presence and its read receipts

const SETTINGS = { "setting-show-presence": "show_presence", "setting-read-receipts": "send_read_receipts" };

function toggleSettings() {
  const open = $("settings-panel").hidden;
  show($("settings-panel"), open);
  $("settings-button").setAttribute("aria-expanded", open ? "true" : "false");
  if (open) loadSettings();
}

function closeSettings() {
  show($("settings-panel"), false);
  $("settings-button").setAttribute("aria-expanded", "false");
}

// Asked each time the panel opens: another device may have changed them.
async function loadSettings() {
  setError("settings-error", "");
  for (const id of Object.keys(SETTINGS)) $(id).disabled = true;
  try {
    showSettings(await client.settings());
  } catch (err) {
    setError("settings-error", `Could not load the settings: ${err.message}`);
  }
}

function showSettings(settings) {
  for (const [id, field] of Object.entries(SETTINGS)) {
    $(id).checked = Boolean(settings[field]);
    $(id).disabled = false;
  }
}

// Saved at once. The box stays enabled (disabling it would take the keyboard's focus
// away); of two quick changes the last answer shows.
let settingsSaving = 0;
async function changeSetting(event) {
  const box = event.target;
  const field = SETTINGS[box.id];
  const asked = (settingsSaving += 1);
  setError("settings-error", "");
  $("settings-panel").setAttribute("aria-busy", "true");
  try {
    const answer = await client.updateSettings({ [field]: box.checked });
    if (asked === settingsSaving) showSettings(answer);
  } catch (err) {
    if (asked !== settingsSaving) return;
    box.checked = !box.checked; // as it still is on the server
    setError("settings-error", `Could not save: ${err.message}`);
  } finally {
    if (asked === settingsSaving) $("settings-panel").removeAttribute("aria-busy");
  }
}

// ---------------------------------------------------------------------------
// Connection state

let connTicker = null;
function renderConnState(state, retryAt) {
  const node = $("conn-state");
  node.dataset.state = state;
  if (connTicker) clearInterval(connTicker);
  connTicker = null;
  const label = $("conn-label");
  if (state === "online") label.textContent = "online";
  else if (state === "connecting") label.textContent = "connecting…";
  else if (retryAt) {
    const tick = () => {
      const s = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
      label.textContent = s ? `offline — retrying in ${s} s` : "offline — retrying…";
    };
    tick();
    connTicker = setInterval(tick, 1000);
  } else label.textContent = "offline";
}

// ---------------------------------------------------------------------------
// Wiring

function wire() {
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    doLogin(false);
  });
  $("register-button").addEventListener("click", () => doLogin(true));
  $("logout-button").addEventListener("click", logOut);
  $("settings-button").addEventListener("click", toggleSettings);
  for (const id of Object.keys(SETTINGS)) $(id).addEventListener("change", changeSetting);
  $("settings-panel").addEventListener("keydown", (e) => {
    if (e.key !== "Escape") return;
    closeSettings();
    $("settings-button").focus();
  });
  $("new-chat-form").addEventListener("submit", startPrivateChat);
  $("new-group-form").addEventListener("submit", createGroup);
  $("add-member-form").addEventListener("submit", addMember);
  $("leave-button").addEventListener("click", leaveGroup);
  $("rename-form").addEventListener("submit", renameGroup);
  $("menu-button").addEventListener("click", toggleMenu);
  $("close-left-button").addEventListener("click", closeLeftConv);
  $("back-button").addEventListener("click", () => document.body.classList.remove("pane-open"));
  $("composer").addEventListener("submit", submitComposer);
  const input = $("composer-input");
  input.addEventListener("keydown", (e) => {
    // Enter sends, Shift+Enter is a new line; Enter that confirms an IME
    // composition (Chinese, Japanese, ...) is not a send.
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) submitComposer(e);
  });
  input.addEventListener("input", () => {
    autoGrow();
    renderCounter();
    noteTyping();
  });
  input.addEventListener("blur", stopTyping);
  // "last seen 5 min ago" ages.
  setInterval(() => {
    const conv = activeConv();
    if (conv && conv.kind === "private") renderHeader(conv);
  }, PRESENCE_REFRESH_MS);
  $("messages").addEventListener("scroll", maybeLoadOlder, { passive: true });
  document.addEventListener("visibilitychange", () => {
    const conv = store.active ? store.convs.get(store.active) : null;
    if (!conv || !onScreen(conv)) return;
    loadReads(conv); // a group too large for receipts: its "read by N" now
    if (markSeen(conv)) {
      renderMessages(conv);
      renderListSoon();
      saveSoon();
    }
  });
  // A click anywhere else closes an open message menu.
  document.addEventListener("click", (e) => {
    if (!menuFor || e.target.closest(".msg-menu")) return;
    menuFor = null;
    deleteArmed = null;
    const conv = store.active ? store.convs.get(store.active) : null;
    if (conv) renderMessages(conv);
  });
}

// For people debugging in the console, and for the browser tests.
window.courier = {
  get state() {
    return stream ? stream.state : "offline";
  },
  get cursor() {
    return store.cursor;
  },
  get session() {
    return store.session ? { user_id: store.session.user_id, username: store.session.username } : null;
  },
  dropSocket: (options) => stream && stream.drop(options || {}),
  resumeSocket: () => stream && stream.resume(),
  store,
};

wire();
if (store.session && !store.sessionExpired()) {
  startApp();
} else {
  toLogin(store.session ? "Your session expired. Please log in again." : "");
}
