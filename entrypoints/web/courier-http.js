// Part of courier.js (the browser client; docs/browser-client.md): one request of the
// API over fetch, its errors, and when a failed request may be tried again.

/**
 * An error of the Courier API: the HTTP `status`, the `code` and `message` of the
 * answer's JSON body (`{"error": {"code", "message"}}`, e.g. "user_not_found",
 * "rate_limited"), and `retryAfter`, the answer's Retry-After in milliseconds (429,
 * some 503) or null. A failure to reach the server at all has status 0 and code
 * "network_error": for a send it does not say the message was not taken.
 */
export class CourierError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   * @param {number|null} [retryAfter] milliseconds
   */
  constructor(status, code, message, retryAfter = null) {
    super(message || code || `HTTP ${status}`);
    this.name = "CourierError";
    /** @type {number} */
    this.status = status;
    /** @type {string} */
    this.code = code || "";
    /** @type {number|null} */
    this.retryAfter = retryAfter;
  }
}

/**
 * Whether a failure is a passing one: the network, 503, 429, or 409 send_in_progress
 * (another attempt with the same client_msg_id is still under way). A send that got
 * one of these may be sent again with the same client_msg_id and is delivered once.
 * @param {unknown} error
 * @returns {boolean}
 */
export function isRetryable(error) {
  if (!(error instanceof CourierError)) return false;
  if (error.status === 409) return error.code === "send_in_progress";
  return error.status === 0 || error.status === 503 || error.status === 429;
}

/**
 * Exponential backoff with "equal jitter": attempt 0 waits base/2 to base, each next
 * attempt up to twice as long, never more than `ceiling`. The random half keeps many
 * clients cut off together from all coming back at once.
 * @param {number} attempt 0 for the first retry
 * @param {number} base milliseconds
 * @param {number} ceiling milliseconds
 * @returns {number} milliseconds
 */
export function backoffDelay(attempt, base, ceiling) {
  const top = Math.min(ceiling, base * 2 ** Math.min(attempt, 30));
  return top / 2 + Math.random() * (top / 2);
}

/**
 * A new client_msg_id (a random UUID). crypto.randomUUID exists only in secure contexts
 * (https, localhost); a page opened over plain http on a LAN address still needs one.
 * @returns {string}
 */
export function newClientMsgId() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * The query string ("?a=1&b=2") of the parameters that have a value ("" when none has).
 * @param {object|null} params
 * @returns {string}
 */
export function queryString(params) {
  const parts = [];
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== null && value !== undefined && value !== "") {
      parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(value)}`);
    }
  }
  return parts.length ? `?${parts.join("&")}` : "";
}

// Retry-After as milliseconds: a number of seconds, or an HTTP date. (A page on another
// origin than the server's sees the header only if the server exposes it to CORS.)
function parseRetryAfter(value) {
  if (!value) return null;
  const seconds = Number(value.trim());
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const when = Date.parse(value);
  return Number.isNaN(when) ? null : Math.max(0, when - Date.now());
}

/**
 * One attempt at a request: the parsed JSON body (null for a 204 or an empty body), or
 * a CourierError. `token` goes as a bearer token.
 * @param {string} url
 * @param {string} method
 * @param {unknown} body sent as JSON unless undefined
 * @param {string|null} token
 * @returns {Promise<any>}
 */
export async function fetchJson(url, method, body, token) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (err) {
    // Refused, reset, offline, or blocked: no answer at all.
    throw new CourierError(0, "network_error", "Cannot reach the server");
  }
  let data = null;
  if (response.status !== 204) {
    try {
      data = await response.json();
    } catch (err) {
      data = null; // not the API's JSON (an empty body, a proxy's page)
    }
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new CourierError(
      response.status,
      error.code || `http_${response.status}`,
      error.message,
      parseRetryAfter(response.headers.get("Retry-After")),
    );
  }
  return data;
}

/**
 * A promise that resolves after `ms` milliseconds.
 * @param {number} ms
 * @returns {Promise<void>}
 */
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
