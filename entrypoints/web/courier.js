// courier.js: Courier's browser client, an ES module with no dependencies and no build
// step (docs/browser-client.md). It imports its parts from beside it: courier-http.js,
// courier-socket.js and courier-events.js. The chat page (app.js) is built on it.

import { CourierError, backoffDelay, fetchJson, isRetryable, newClientMsgId, queryString, sleep } from "./courier-http.js";
import { EventStream, RESYNC } from "./courier-events.js";

export { CourierError, EventStream, RESYNC, isRetryable, newClientMsgId };

const API = "/api/v1";
const seg = encodeURIComponent;

/**
 * A client of one Courier server.
 *
 * ```js
 * import { CourierClient } from "./courier.js";
 * const client = new CourierClient({ baseUrl: "https://chat.example.com" });
 * await client.login("alice", "correct horse");
 * const bob = await client.findUser("bob");
 * await client.sendPrivate(bob.user_id, "hi Bob");
 * for await (const event of client.events()) console.log(event);
 * ```
 *
 * `login()` keeps the token (and `userId`); every call after it is made as that user.
 * A token obtained elsewhere may be given as `token` (or set on `client.token`).
 *
 * Retries: a send (`sendPrivate`, `sendGroup`) carries a client_msg_id (a new UUID
 * unless given) and is sent again, with the same id and body, after a network error, a
 * 503, a 429 (after its Retry-After) or a 409 send_in_progress, with exponential backoff
 * and jitter, for up to `retryFor` milliseconds: the server delivers it once however many
 * attempts it takes. Reads and the idempotent changes (login, mark read, rename, edit,
 * settings) are retried the same way; calls that would not be safe to repeat (register,
 * logout, create a group, add or remove a member, delete) are not. Every failure is
 * thrown as a CourierError.
 */
export class CourierClient {
  /**
   * @param {object} [options]
   * @param {string} [options.baseUrl] the server, e.g. "https://chat.example.com" (a path
   *   prefix is kept); "" (the default): the page's own origin. The WebSocket's URL is
   *   made from it (ws: or wss:).
   * @param {string|null} [options.token] a token obtained elsewhere
   * @param {number} [options.retryFor] how long a call is retried, in ms (0: never)
   * @param {number} [options.backoffBase] the first retry's delay, in ms
   * @param {number} [options.backoffMax] the longest delay between retries, in ms
   * @param {(error: CourierError) => void} [options.onUnauthorized] called when a call
   *   made with a token is answered 401 (the token expired or was revoked)
   */
  constructor({ baseUrl = "", token = null, retryFor = 30_000, backoffBase = 200, backoffMax = 5_000,
                onUnauthorized = null } = {}) {
    /** @type {string} */
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    /** @type {string|null} */
    this.token = token;
    /** @type {string|null} the logged-in user's id (login() and me() set it) */
    this.userId = null;
    /** @type {string|null} */
    this.username = null;
    this.retryFor = retryFor;
    this.backoffBase = backoffBase;
    this.backoffMax = backoffMax;
    this.onUnauthorized = onUnauthorized;
  }

  /**
   * The WebSocket's URL: the base URL (or the page's origin) with ws: or wss:, and /ws.
   * @type {string}
   */
  get wsUrl() {
    const url = new URL(this.baseUrl || "/", globalThis.location ? location.href : undefined);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.pathname = `${url.pathname.replace(/\/+$/, "")}/ws`;
    url.search = "";
    url.hash = "";
    return url.href;
  }

  /**
   * One call of the API: `path` under /api/v1, `body` sent as JSON, `query` without its
   * null values. Resolves to the decoded JSON (null for a 204); throws CourierError.
   * With `retry`, passing failures (isRetryable) are tried again for up to `retryFor` ms.
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body]
   * @param {{query?: object, auth?: boolean, retry?: boolean}} [options]
   * @returns {Promise<any>}
   */
  async request(method, path, body = undefined, { query = null, auth = true, retry = false } = {}) {
    const url = this.baseUrl + API + path + queryString(query);
    const token = auth ? this.token : null;
    if (auth && !token) throw new CourierError(401, "unauthorized", "log in first (or give a token)");
    const deadline = Date.now() + this.retryFor;
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await fetchJson(url, method, body, token);
      } catch (error) {
        if (error.status === 401 && token && this.onUnauthorized) this.onUnauthorized(error);
        if (!retry || !isRetryable(error)) throw error;
        let delay = backoffDelay(attempt, this.backoffBase, this.backoffMax);
        if (error.retryAfter !== null) delay = Math.max(error.retryAfter, 50); // as told, never without a pause
        if (Date.now() + delay > deadline) throw error;
        await sleep(delay);
      }
    }
  }

  // --- accounts ---------------------------------------------------------------

  /**
   * Create an account (not logged in: call login()).
   * @param {string} username
   * @param {string} password
   * @returns {Promise<{user_id: string, username: string}>}
   */
  register(username, password) {
    return this.request("POST", "/users/register", { username, password }, { auth: false });
  }

  /**
   * Log in, and keep the token for the calls that follow.
   * @param {string} username
   * @param {string} password
   * @returns {Promise<{user_id: string, username: string, token: string, expires_at: number}>}
   */
  async login(username, password) {
    const answer = await this.request("POST", "/users/login", { username, password }, { auth: false, retry: true });
    this.token = answer.token;
    this.userId = answer.user_id;
    this.username = answer.username;
    return answer;
  }

  /**
   * End this token on the server (its sockets close); the client forgets it.
   * @returns {Promise<void>}
   */
  async logout() {
    await this.request("POST", "/users/logout");
    this.token = null;
  }

  /**
   * End every token of this user issued until now.
   * @returns {Promise<void>}
   */
  async logoutAll() {
    await this.request("POST", "/users/logout-all");
    this.token = null;
  }

  /**
   * The logged-in user.
   * @returns {Promise<{user_id: string, username: string}>}
   */
  async me() {
    const answer = await this.request("GET", "/users/me", undefined, { retry: true });
    this.userId = answer.user_id;
    this.username = answer.username;
    return answer;
  }

  /**
   * This user's own choices.
   * @returns {Promise<{send_read_receipts: boolean, show_presence: boolean}>}
   */
  settings() {
    return this.request("GET", "/users/me/settings", undefined, { retry: true });
  }

  /**
   * Change one or both settings: the user with both.
   * @param {{send_read_receipts?: boolean, show_presence?: boolean}} changes
   * @returns {Promise<object>}
   */
  updateSettings(changes) {
    return this.request("PATCH", "/users/me", changes, { retry: true });
  }

  /**
   * A user by id (404 user_not_found).
   * @param {string} userId
   * @returns {Promise<{user_id: string, username: string}>}
   */
  getUser(userId) {
    return this.request("GET", `/users/${seg(userId)}`, undefined, { retry: true });
  }

  /**
   * A user by username (any spelling that looks the same; 404 user_not_found).
   * @param {string} username
   * @returns {Promise<{user_id: string, username: string}>}
   */
  findUser(username) {
    return this.request("GET", "/users", undefined, { query: { username }, retry: true });
  }

  /**
   * A user's presence.
   * @param {string} userId
   * @returns {Promise<{type: "presence", user_id: string, status: string, last_seen: number|null}>}
   */
  presence(userId) {
    return this.request("GET", `/users/${seg(userId)}/presence`, undefined, { retry: true });
  }

  // --- sending ----------------------------------------------------------------

  /**
   * Send a private message: the message (`id`, `seq`, `created_at`, ...). Retried with
   * the same client_msg_id until the server takes it or `retryFor` runs out: delivered
   * once either way.
   * @param {string} toUserId
   * @param {string} content
   * @param {{clientMsgId?: string}} [options] the id to send it with (a new UUID unless given)
   * @returns {Promise<object>}
   */
  sendPrivate(toUserId, content, { clientMsgId = newClientMsgId() } = {}) {
    const body = { to_user_id: toUserId, content, client_msg_id: clientMsgId };
    return this.request("POST", "/messages", body, { retry: true });
  }

  /**
   * Send a message to a group; retried as sendPrivate is.
   * @param {string} groupId
   * @param {string} content
   * @param {{clientMsgId?: string}} [options]
   * @returns {Promise<object>}
   */
  sendGroup(groupId, content, { clientMsgId = newClientMsgId() } = {}) {
    const body = { content, client_msg_id: clientMsgId };
    return this.request("POST", `/groups/${seg(groupId)}/messages`, body, { retry: true });
  }

  /**
   * The sender edits a message (within the edit window): the message, with `edited_at`.
   * @param {string} messageId
   * @param {string} content
   * @returns {Promise<object>}
   */
  editMessage(messageId, content) {
    return this.request("PATCH", `/messages/${seg(messageId)}`, { content }, { retry: true });
  }

  /**
   * Delete one's own message (or, in a group one owns, anyone's).
   * @param {string} messageId
   * @returns {Promise<void>}
   */
  async deleteMessage(messageId) {
    await this.request("DELETE", `/messages/${seg(messageId)}`);
  }

  // --- history and conversations ----------------------------------------------

  /**
   * One page of the conversation with a user, newest first; pass `next_before` as
   * `before` for the next, older page (null at the end).
   * @param {string} userId
   * @param {{before?: number|string|null, limit?: number}} [page]
   * @returns {Promise<{messages: object[], next_before: number|null}>}
   */
  privateHistory(userId, { before = null, limit = null } = {}) {
    return this.request("GET", `/conversations/${seg(userId)}/messages`, undefined,
      { query: { before, limit }, retry: true });
  }

  /**
   * One page of a group's messages, newest first (as privateHistory).
   * @param {string} groupId
   * @param {{before?: number|string|null, limit?: number}} [page]
   * @returns {Promise<{messages: object[], next_before: number|null}>}
   */
  groupHistory(groupId, { before = null, limit = null } = {}) {
    return this.request("GET", `/groups/${seg(groupId)}/messages`, undefined,
      { query: { before, limit }, retry: true });
  }

  /**
   * Every message with a user, newest first, a page at a time:
   * `for await (const message of client.everyPrivateMessage(userId)) ...`
   * @param {string} userId
   * @param {{pageSize?: number}} [options]
   * @returns {AsyncGenerator<object>}
   */
  everyPrivateMessage(userId, { pageSize = 100 } = {}) {
    return every((before) => this.privateHistory(userId, { before, limit: pageSize }), "messages");
  }

  /**
   * Every message of a group, newest first, a page at a time.
   * @param {string} groupId
   * @param {{pageSize?: number}} [options]
   * @returns {AsyncGenerator<object>}
   */
  everyGroupMessage(groupId, { pageSize = 100 } = {}) {
    return every((before) => this.groupHistory(groupId, { before, limit: pageSize }), "messages");
  }

  /**
   * One page of the user's chats, most recent activity first; each with `type`,
   * `user_id`/`username` or `group_id`/`name`, `last_message`, `last_seq`, `read_seq`,
   * `unread_count`, `updated_at`.
   * @param {{before?: string|null, limit?: number}} [page]
   * @returns {Promise<{conversations: object[], next_before: string|null}>}
   */
  conversations({ before = null, limit = null } = {}) {
    return this.request("GET", "/conversations", undefined, { query: { before, limit }, retry: true });
  }

  /**
   * Every chat of the user, most recent activity first, a page at a time.
   * @param {{pageSize?: number}} [options]
   * @returns {AsyncGenerator<object>}
   */
  everyConversation({ pageSize = 100 } = {}) {
    return every((before) => this.conversations({ before, limit: pageSize }), "conversations");
  }

  /**
   * Move the read marker of the chat with a user forward to `seq`.
   * @param {string} userId
   * @param {number} seq
   * @returns {Promise<{read_seq: number, unread_count: number}>}
   */
  markReadPrivate(userId, seq) {
    return this.request("POST", `/conversations/${seg(userId)}/read`, { seq }, { retry: true });
  }

  /**
   * Move the read marker of a group forward to `seq`.
   * @param {string} groupId
   * @param {number} seq
   * @returns {Promise<{read_seq: number, unread_count: number}>}
   */
  markReadGroup(groupId, seq) {
    return this.request("POST", `/groups/${seg(groupId)}/read`, { seq }, { retry: true });
  }

  /**
   * Each member's read marker (null: that member's receipts are off).
   * @param {string} groupId
   * @returns {Promise<Array<{user_id: string, read_seq: number|null}>>}
   */
  async groupReads(groupId) {
    return (await this.request("GET", `/groups/${seg(groupId)}/reads`, undefined, { retry: true })).reads;
  }

  // --- groups -----------------------------------------------------------------

  /**
   * A new group owned by the caller.
   * @param {string} name
   * @param {string[]} [memberIds]
   * @returns {Promise<{group_id: string, name: string, owner_id: string, member_ids: string[]}>}
   */
  createGroup(name, memberIds = []) {
    return this.request("POST", "/groups", { name, member_ids: memberIds });
  }

  /**
   * A group the caller is in.
   * @param {string} groupId
   * @returns {Promise<object>}
   */
  getGroup(groupId) {
    return this.request("GET", `/groups/${seg(groupId)}`, undefined, { retry: true });
  }

  /**
   * One page of the caller's groups, the most recently joined first.
   * @param {{before?: string|null, limit?: number}} [page]
   * @returns {Promise<{groups: object[], next_before: string|null}>}
   */
  groups({ before = null, limit = null } = {}) {
    return this.request("GET", "/groups", undefined, { query: { before, limit }, retry: true });
  }

  /**
   * Every group of the caller, the most recently joined first, a page at a time.
   * @param {{pageSize?: number}} [options]
   * @returns {AsyncGenerator<object>}
   */
  everyGroup({ pageSize = 100 } = {}) {
    return every((before) => this.groups({ before, limit: pageSize }), "groups");
  }

  /**
   * The owner renames a group: the group.
   * @param {string} groupId
   * @param {string} name
   * @returns {Promise<object>}
   */
  renameGroup(groupId, name) {
    return this.request("PATCH", `/groups/${seg(groupId)}`, { name }, { retry: true });
  }

  /**
   * Add a user to a group: the group.
   * @param {string} groupId
   * @param {string} userId
   * @returns {Promise<object>}
   */
  addMember(groupId, userId) {
    return this.request("POST", `/groups/${seg(groupId)}/members`, { user_id: userId });
  }

  /**
   * Remove a member (the owner), or leave (one's own id).
   * @param {string} groupId
   * @param {string} userId
   * @returns {Promise<void>}
   */
  async removeMember(groupId, userId) {
    await this.request("DELETE", `/groups/${seg(groupId)}/members/${seg(userId)}`);
  }

  /**
   * Leave a group.
   * @param {string} groupId
   * @returns {Promise<void>}
   */
  async leaveGroup(groupId) {
    if (!this.userId) await this.me();
    await this.removeMember(groupId, this.userId);
  }

  // --- the event log ----------------------------------------------------------

  /**
   * One page of the user's event log after `cursor` (from the oldest retained event
   * without one), oldest first. A cursor older than the log retains is a CourierError
   * 410 cursor_expired.
   * @param {string|null} [cursor]
   * @param {{limit?: number, retry?: boolean}} [options]
   * @returns {Promise<{events: object[], next_cursor: string|null, has_more: boolean}>}
   */
  pullEvents(cursor = null, { limit = null, retry = true } = {}) {
    return this.request("GET", "/events", undefined, { query: { cursor, limit }, retry });
  }

  /**
   * The user's event stream: every event of its log once, in log order, live, across
   * reconnections; see EventStream for its options. Iterate it with `for await`, or
   * give it an `onEvent` callback and start() it.
   * @param {import("./courier-events.js").EventStreamOptions} [options]
   * @returns {EventStream}
   */
  events(options = {}) {
    return new EventStream(this, options);
  }
}

// Every item of a listing paged backwards: page[key], then the page before
// page.next_before, until it is null.
async function* every(fetchPage, key) {
  let before = null;
  do {
    const page = await fetchPage(before);
    yield* page[key];
    before = page.next_before;
  } while (before !== null && before !== undefined);
}
