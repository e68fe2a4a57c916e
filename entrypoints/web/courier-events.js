// Part of courier.js (the browser client; docs/browser-client.md): EventStream, the user's
// event log, live, across drops. How it keeps "every event once, none lost":
//
// - Every stored event carries a `cursor`, its place in the user's log; cursors grow in
//   log order. The stream remembers the last one it took and passes over any event at
//   or before it, so a replay that overlaps what was already handed out hands out
//   nothing twice.
// - Before a socket opens, the log is read over HTTP (GET /api/v1/events) from the last
//   cursor to its end; the socket then resumes from there (?cursor=). On any drop (the
//   server restarted, the network went, a pong did not come) it reconnects with backoff
//   and jitter: at once with its cursor after a plain close, else after reading the log
//   again over HTTP (which also finds out whether the token and the cursor still hold).
// - A socket opened without a cursor (an empty log) starts live: the log is then read
//   from its start, and what the socket pushes meanwhile waits for that read to end, so
//   the two meet without a gap and the overlap is taken once.
// - A cursor the server no longer retains (410 cursor_expired, close 4410) cannot be
//   resumed: the stream hands out {"type": "resync", "expired_cursor": C} (RESYNC), then
//   the whole retained log from its start, then live events. What was between C and the
//   oldest retained event is not in the stream: refetch history (and the conversations).
//
// Typing, presence, pong and error frames carry no cursor; they are handed out as they
// come (never replayed: a frame pushed while the socket was down is lost by design).

import { CourierError, isRetryable } from "./courier-http.js";
import { LiveSocket } from "./courier-socket.js";

/** The type of the event an EventStream hands out when its cursor had expired. */
export const RESYNC = "resync";
const CURSOR = /^([0-9]{1,20})-([0-9]{1,20})$/;

// A cursor ("<major>-<minor>") as the pair of integers the server orders cursors by.
function cursorOrder(cursor) {
  const match = typeof cursor === "string" ? CURSOR.exec(cursor) : null;
  return match ? [BigInt(match[1]), BigInt(match[2])] : null;
}

function notAfter(a, b) {
  return a[0] < b[0] || (a[0] === b[0] && a[1] <= b[1]);
}

/**
 * @typedef {object} EventStreamOptions
 * @property {string|null} [cursor] resume right after this cursor (kept from an earlier
 *   stream's `cursor`)
 * @property {boolean} [fromStart] without a cursor: begin at the oldest retained event
 *   (by default a stream without a cursor begins at the end of the log as it is now)
 * @property {(event: object, info: {live: boolean, first: boolean}) => void} [onEvent]
 *   each event, once, in log order: `live` when pushed on the socket, `first` when read
 *   by a pull that began without a cursor (old history rather than news)
 * @property {(state: "connecting"|"online"|"offline", retryAt: number|null) => void} [onState]
 *   the socket's state, and when offline the time (Date.now()) of the next try
 * @property {(error: CourierError) => void} [onError] the stream stopped for good:
 *   401 (the token expired or was revoked: log in, and resume from `cursor` with a new
 *   stream), or an answer that retrying cannot change
 * @property {() => void} [onCaughtUp] the log has just been read up to its end over HTTP
 * @property {() => Promise<void>} [beforeReconnect] awaited before each reconnection that
 *   reads the log over HTTP first (e.g. to reload what a page shows); a rejection means
 *   "not yet": the next try comes after a backoff
 * @property {number} [pageSize] events per pull (default 200)
 * @property {number} [backoffBase] the first reconnection's delay in ms (default 500)
 * @property {number} [backoffMax] the longest delay in ms (default 15000)
 * @property {number} [stableAfter] a socket open this long (ms) starts the backoff over
 * @property {number} [pingEvery] ms between the client's pings (default 30000)
 * @property {number} [pongTimeout] ms to wait for a pong before giving the socket up
 */

/**
 * The user's event log as a stream: every stored event once, in log order, live,
 * across reconnections. Iterate it (`for await (const event of stream)`; leaving the
 * loop stops it), or give `onEvent` and call start(). Made by CourierClient.events().
 * `cursor` is the cursor of the last event handed out: keep it, and a later
 * `client.events({cursor})` goes on right after it.
 */
export class EventStream {
  /**
   * @param {import("./courier.js").CourierClient} client
   * @param {EventStreamOptions} [options]
   */
  constructor(client, {
    cursor = null, fromStart = false, onEvent = null, onState = null, onError = null, onCaughtUp = null,
    beforeReconnect = null, pageSize = 200, backoffBase = 500, backoffMax = 15_000, stableAfter = 10_000,
    pingEvery = 30_000, pongTimeout = 10_000,
  } = {}) {
    this.client = client;
    this.onEvent = onEvent;
    this.onError = onError;
    this.onCaughtUp = onCaughtUp;
    this.beforeReconnect = beforeReconnect;
    this.pageSize = pageSize;
    /** @type {string|null} the cursor of the last event handed out */
    this.cursor = cursor;
    this.order = cursorOrder(cursor);
    // Without a cursor, "live" first reads the log to its end to begin after it.
    this.live = !cursor && !fromStart;
    /** @type {number} sockets opened so far */
    this.connects = 0;
    /** @type {number} expired-cursor fallbacks taken */
    this.resyncs = 0;
    this.started = false;
    this.ended = false; // stop() was called: for good
    this.catchingUp = null;
    this.heldFrames = null; // socket frames waiting for a pull to end
    this.presenceIds = null;
    this.queue = null; // events waiting for the iterator (only when iterated)
    this.waiter = null;
    this.error = null;
    this.socket = new LiveSocket({
      getToken: () => client.token,
      getUrl: () => `${client.wsUrl}?events=1${this.cursor ? `&cursor=${encodeURIComponent(this.cursor)}` : ""}`,
      onOpen: () => this.opened(),
      onMessage: (frame) => this.pushed(frame),
      onState: (state, retryAt) => onState && onState(state, retryAt),
      onTokenExpired: () => this.fail(new CourierError(401, "invalid_token", "token expired or revoked: log in again")),
      beforeRetry: () => this.check(),
      timings: { pingEvery, pongTimeout, backoffBase, backoffMax, stableAfter },
    });
  }

  /** @type {"connecting"|"online"|"offline"} */
  get state() {
    return this.socket.state;
  }

  /** @type {boolean} true until started, and once stopped */
  get stopped() {
    return this.socket.stopped;
  }

  /**
   * Begin: read the log from the cursor (or find its end), then open the socket. When the
   * server cannot be reached it goes on trying in the background. Resolves once the
   * first read is done or has failed.
   * @returns {Promise<void>}
   */
  async start() {
    if (this.started) return;
    this.started = true;
    try {
      await this.prepare();
    } catch (error) {
      if (this.ended) return;
      if (isRetryable(error)) this.connectLater();
      else this.fail(error);
      return;
    }
    this.connect();
  }

  /** Open the socket now (the log was read up to its end by catchUp()). */
  connect() {
    this.started = true;
    if (!this.ended) this.socket.start();
  }

  /** Open the socket after a backoff, reading the log first (the server was not reached). */
  connectLater() {
    this.started = true;
    if (!this.ended) this.socket.startLater();
  }

  /**
   * Stop, for good (a new stream goes on from this one's `cursor`): the socket closes,
   * iteration ends, no event is handed out any more.
   */
  stop() {
    this.ended = true;
    this.socket.stop();
    this.heldFrames = null;
    const waiter = this.waiter;
    this.waiter = null;
    if (!waiter) return;
    if (this.error) waiter.reject(this.takeError());
    else waiter.resolve({ done: true, value: undefined });
  }

  /**
   * Read the log over HTTP from the cursor up to its end, handing out each new event
   * (with the expired-cursor fallback). Safe to call concurrently: one read runs.
   * @returns {Promise<void>}
   */
  catchUp() {
    if (!this.catchingUp) {
      this.catchingUp = this.readLog().finally(() => {
        this.catchingUp = null;
      });
    }
    return this.catchingUp;
  }

  /**
   * Send a frame on the socket: false when it is not open (nothing is queued).
   * @param {object} frame
   * @returns {boolean}
   */
  send(frame) {
    return this.socket.send(frame);
  }

  /**
   * Tell the other participants the user is typing ("start") or stopped ("stop").
   * @param {"start"|"stop"} state
   * @param {{toUserId?: string, groupId?: string}} target
   * @returns {boolean} false when the socket is not open
   */
  typing(state, { toUserId, groupId }) {
    return this.send(groupId ? { type: "typing", state, group_id: groupId } : { type: "typing", state, to_user_id: toUserId });
  }

  /**
   * Watch these users' presence (at most 200; [] ends it): one `presence` event per user
   * at once, then one on every change. Kept, and asked again after each reconnection.
   * @param {string[]} userIds
   */
  subscribePresence(userIds) {
    this.presenceIds = [...userIds];
    this.send({ type: "presence_subscribe", user_ids: this.presenceIds });
  }

  /**
   * Testing and debugging: lose the socket as a network drop would (with `hold`, stay
   * offline until resume()).
   * @param {{hold?: boolean}} [options]
   */
  drop(options = {}) {
    this.socket.drop(options);
  }

  /** Reconnect now after drop({hold: true}). */
  resume() {
    this.socket.resume();
  }

  /** @returns {AsyncIterator<object>} */
  [Symbol.asyncIterator]() {
    if (!this.queue) this.queue = [];
    this.start();
    return {
      next: () => this.next(),
      return: async () => {
        this.stop();
        return { done: true, value: undefined };
      },
    };
  }

  // --- inside ---------------------------------------------------------------------

  next() {
    if (this.queue.length) return Promise.resolve({ done: false, value: this.queue.shift() });
    if (this.error) return Promise.reject(this.takeError());
    if (this.ended) return Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  // The end, for good: the iterator throws the error (once), onError hears of it.
  fail(error) {
    if (this.queue) this.error = error;
    this.stop();
    if (this.onError) this.onError(error);
  }

  takeError() {
    const error = this.error;
    this.error = null;
    return error;
  }

  // Whether an event is new: after the last one taken (its cursor is then the last).
  take(event) {
    const cursor = event.cursor;
    if (typeof cursor !== "string") return true; // typing, presence, error: not in the log
    const order = cursorOrder(cursor);
    if (order === null) {
      if (cursor === this.cursor) return false; // not of today's form: only the last one again
    } else if (this.order !== null && notAfter(order, this.order)) return false;
    this.cursor = cursor;
    this.order = order;
    return true;
  }

  handOut(event, info) {
    if (this.ended || !this.take(event)) return;
    if (this.onEvent) this.onEvent(event, info);
    if (!this.queue) return;
    if (this.waiter) {
      const { resolve } = this.waiter;
      this.waiter = null;
      resolve({ done: false, value: event });
    } else this.queue.push(event);
  }

  pushed(frame) {
    if (this.heldFrames && typeof frame.cursor === "string") this.heldFrames.push(frame);
    else this.handOut(frame, { live: true, first: false });
  }

  // A socket opened: presence asked for again (it belongs to a socket); one opened
  // without a cursor starts live, so the log is read from its start to meet it.
  opened() {
    this.connects += 1;
    if (this.presenceIds) this.send({ type: "presence_subscribe", user_ids: this.presenceIds });
    if (this.cursor) return;
    this.heldFrames = [];
    this.catchUp().then(
      () => {
        const held = this.heldFrames || [];
        this.heldFrames = null;
        for (const frame of held) this.handOut(frame, { live: true, first: false });
      },
      () => {
        // What the socket pushed cannot be taken past a gap: this socket is given up,
        // and the next one (again without a cursor) is met by a new read of the log.
        this.heldFrames = null;
        if (!this.ended) this.socket.drop();
      },
    );
  }

  // Before a reconnection that is not a plain resume: the caller's own checks, then the
  // log. An answer that retrying cannot change ends the stream.
  async check() {
    if (this.beforeReconnect) await this.beforeReconnect();
    try {
      await this.prepare();
    } catch (error) {
      if (!this.ended && !isRetryable(error)) this.fail(error);
      throw error;
    }
  }

  async prepare() {
    if (this.live) await this.findEnd();
    await this.catchUp();
  }

  // A live start: the log is read to its end (nothing handed out), to begin after it.
  async findEnd() {
    let cursor = null;
    for (;;) {
      let page;
      try {
        page = await this.client.pullEvents(cursor, { limit: this.pageSize, retry: false });
      } catch (error) {
        if (error.status !== 410 || !cursor) throw error;
        cursor = null; // trimmed while read: read again
        continue;
      }
      const events = page.events || [];
      for (const event of events) this.take(event);
      cursor = page.next_cursor || cursor;
      if (!page.has_more || !events.length) break;
    }
    this.live = false;
  }

  async readLog() {
    const first = !this.cursor; // a read from the start is old history, not news
    let cursor = this.cursor;
    for (;;) {
      let page;
      try {
        page = await this.client.pullEvents(cursor, { limit: this.pageSize, retry: false });
      } catch (error) {
        if (!(error instanceof CourierError) || error.status !== 410 || !cursor) throw error;
        this.resync(cursor);
        cursor = null;
        continue;
      }
      const events = page.events || [];
      for (const event of events) this.handOut(event, { live: false, first });
      cursor = page.next_cursor || cursor;
      if (this.ended) return;
      if (!page.has_more || !events.length) break;
    }
    if (this.onCaughtUp) this.onCaughtUp();
  }

  // The documented fallback: say so, then take the retained log from its start.
  resync(expiredCursor) {
    this.cursor = null;
    this.order = null;
    this.resyncs += 1;
    this.handOut({ type: RESYNC, expired_cursor: expiredCursor }, { live: false, first: false });
  }
}
