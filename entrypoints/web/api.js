// The HTTP side of the API (docs/api.md, HTTP routes), as small async functions.
// Every call answers the parsed JSON body, or throws an ApiError carrying the
// status and the server's {"error": {"code", "message"}}.

const PREFIX = "/api/v1";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status; // 0: the server could not be reached
    this.code = code || "";
  }
}

export class Api {
  constructor({ getToken, onUnauthorized }) {
    this.getToken = getToken;
    this.onUnauthorized = onUnauthorized;
  }

  async request(method, path, body, { auth = true } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const token = auth ? this.getToken() : null;
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(PREFIX + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch (err) {
      throw new ApiError(0, "network", "Cannot reach the server");
    }
    let data = null;
    if (response.status !== 204) {
      try {
        data = await response.json();
      } catch (err) {
        data = null;
      }
    }
    if (!response.ok) {
      const error = (data && data.error) || {};
      const apiError = new ApiError(response.status, error.code, error.message);
      if (response.status === 401 && auth && token) this.onUnauthorized(apiError);
      throw apiError;
    }
    return data;
  }

  register(username, password) {
    return this.request("POST", "/users/register", { username, password }, { auth: false });
  }
  login(username, password) {
    return this.request("POST", "/users/login", { username, password }, { auth: false });
  }
  // Ends the session on the server: the token is refused from now on, everywhere.
  logout() {
    return this.request("POST", "/users/logout");
  }
  me() {
    return this.request("GET", "/users/me");
  }
  // {"send_read_receipts", "show_presence"}: this user's own choices.
  settings() {
    return this.request("GET", "/users/me/settings");
  }
  // Change one or both: 200 with the user and its settings.
  updateSettings(changes) {
    return this.request("PATCH", "/users/me", changes);
  }
  userById(userId) {
    return this.request("GET", `/users/${encodeURIComponent(userId)}`);
  }
  userByName(username) {
    return this.request("GET", `/users?username=${encodeURIComponent(username)}`);
  }

  sendPrivate(toUserId, content, clientMsgId) {
    return this.request("POST", "/messages", { to_user_id: toUserId, content, client_msg_id: clientMsgId });
  }
  sendGroup(groupId, content, clientMsgId) {
    return this.request("POST", `/groups/${encodeURIComponent(groupId)}/messages`, {
      content,
      client_msg_id: clientMsgId,
    });
  }

  // One page of the caller's groups, newest joined first: {groups, next_before}.
  groups(before, limit = 200) {
    return this.request("GET", `/groups${query({ before, limit })}`);
  }
  group(groupId) {
    return this.request("GET", `/groups/${encodeURIComponent(groupId)}`);
  }
  createGroup(name, memberIds = []) {
    return this.request("POST", "/groups", { name, member_ids: memberIds });
  }
  addMember(groupId, userId) {
    return this.request("POST", `/groups/${encodeURIComponent(groupId)}/members`, { user_id: userId });
  }
  // The owner only (403 for anyone else): 200 with the group.
  renameGroup(groupId, name) {
    return this.request("PATCH", `/groups/${encodeURIComponent(groupId)}`, { name });
  }
  removeMember(groupId, userId) {
    return this.request("DELETE", `/groups/${encodeURIComponent(groupId)}/members/${encodeURIComponent(userId)}`);
  }

  // History: newest first, {messages, next_before}.
  privateHistory(peerId, before, limit = 50) {
    return this.request("GET", `/conversations/${encodeURIComponent(peerId)}/messages${query({ before, limit })}`);
  }
  groupHistory(groupId, before, limit = 50) {
    return this.request("GET", `/groups/${encodeURIComponent(groupId)}/messages${query({ before, limit })}`);
  }

  // The conversation list, most recent activity first: {conversations, next_before}; each
  // with its last_message, last_seq, read_seq and unread_count.
  conversations(before, limit = 100) {
    return this.request("GET", `/conversations${query({ before, limit })}`);
  }
  // Move this user's read marker forward to seq: {read_seq, unread_count}.
  markRead(kind, id, seq) {
    const path = kind === "group" ? `/groups/${encodeURIComponent(id)}` : `/conversations/${encodeURIComponent(id)}`;
    return this.request("POST", `${path}/read`, { seq });
  }
  // Every member's read_seq (null: receipts off): {reads: [{user_id, read_seq}]}.
  groupReads(groupId) {
    return this.request("GET", `/groups/${encodeURIComponent(groupId)}/reads`);
  }
  // The sender, within the edit window: 200 with the message, now with edited_at.
  editMessage(messageId, content) {
    return this.request("PATCH", `/messages/${encodeURIComponent(messageId)}`, { content });
  }
  // The sender, or a group's owner: 204.
  deleteMessage(messageId) {
    return this.request("DELETE", `/messages/${encodeURIComponent(messageId)}`);
  }

  // The pull in the original view: oldest first, {messages, next_cursor, has_more}.
  pull(cursor, limit = 200) {
    return this.request("GET", `/messages${query({ cursor, limit })}`);
  }
  // The pull in the event view (the page's): oldest first, {events, next_cursor, has_more};
  // messages to and from the user (own sends with their client_msg_id) and group changes.
  events(cursor, limit = 200) {
    return this.request("GET", `/events${query({ cursor, limit })}`);
  }
}

function query(params) {
  const parts = [];
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") {
      parts.push(`${key}=${encodeURIComponent(value)}`);
    }
  }
  return parts.length ? `?${parts.join("&")}` : "";
}

// crypto.randomUUID exists only in secure contexts (https, localhost); a page
// opened over plain http on a LAN address still needs client_msg_id.
export function newId() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
