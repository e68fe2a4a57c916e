// Part of courier.js (the browser client; docs/browser-client.md): the live side of the
// contract (docs/api.md, The WebSocket), in the event view (README "Events"): one
// WebSocket that reconnects with exponential backoff and jitter, pings with a JSON
// {"type": "ping"} every 30 s and closes a socket whose pong does not come back, and
// reports 4001 (token expired). Where it resumes from is its owner's (EventStream).

import { backoffDelay } from "./courier-http.js";

const TOKEN_EXPIRED = 4001;
// Closes that say nothing more than "the connection went away": the next try
// resumes over the socket at once. Any other close (or a socket that never
// opened) first has its owner check things over HTTP (token, cursor): beforeRetry.
const PLAIN_CLOSES = new Set([1000, 1001, 1005, 1006]);

/**
 * One event-view WebSocket, kept open: EventStream's part (use that rather than this).
 * Its state is "connecting", "online" or "offline".
 */
export class LiveSocket {
  /**
   * @param {object} options
   * @param {() => string|null} options.getToken the token it connects with
   * @param {() => string} options.getUrl the socket's URL (with the cursor to resume from)
   * @param {() => void} options.onOpen a socket opened
   * @param {(frame: object) => void} options.onMessage each JSON object frame but pongs
   * @param {(state: string, retryAt: number|null) => void} options.onState
   * @param {() => void} options.onTokenExpired closed with 4001: it stays stopped
   * @param {() => Promise<void>} options.beforeRetry awaited before a try that needs
   *   checking; a rejection means "not yet"
   * @param {{pingEvery: number, pongTimeout: number, backoffBase: number, backoffMax: number,
   *   stableAfter: number}} options.timings in ms
   */
  constructor({ getToken, getUrl, onOpen, onMessage, onState, onTokenExpired, beforeRetry, timings }) {
    this.getToken = getToken;
    this.getUrl = getUrl;
    this.onOpen = onOpen;
    this.timings = timings; // {pingEvery, pongTimeout, backoffBase, backoffMax, stableAfter}
    this.onMessage = onMessage;
    this.onState = onState;
    this.onTokenExpired = onTokenExpired;
    this.beforeRetry = beforeRetry; // async; throws when the server is still unreachable
    this.ws = null;
    this.state = "offline";
    this.attempt = 0;
    this.retryTimer = null;
    this.retryAt = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.stopped = true;
    this.held = false;
    this.needsCheck = false;
    this.onBrowserOnline = () => {
      if (!this.stopped && !this.held && this.state === "offline") this.retryNow();
    };
    // The browser knows the network is gone: a socket may not notice for a while (until
    // its ping goes unanswered), so it is given up now and retried when the network is back.
    this.onBrowserOffline = () => {
      if (this.stopped || this.state === "offline") return;
      this.needsCheck = false;
      this.abandon();
      this.setState("offline");
      if (!this.held) this.scheduleRetry();
    };
  }

  start() {
    this.run();
    this.connect();
  }

  // Not connected yet, and what the socket resumes from needs checking first (the
  // server could not be reached): the first try comes after a backoff.
  startLater() {
    this.run();
    this.needsCheck = true;
    this.scheduleRetry();
  }

  run() {
    this.stopped = false;
    this.held = false;
    this.attempt = 0;
    window.addEventListener("online", this.onBrowserOnline);
    window.addEventListener("offline", this.onBrowserOffline);
  }

  stop() {
    this.stopped = true;
    window.removeEventListener("online", this.onBrowserOnline);
    window.removeEventListener("offline", this.onBrowserOffline);
    this.clearRetry();
    this.abandon();
    this.setState("offline");
  }

  // Test and debugging hook: lose the socket as a network drop would. With
  // hold, stay offline until resume() is called.
  drop({ hold = false } = {}) {
    if (this.stopped) return;
    this.held = hold;
    this.abandon();
    this.setState("offline");
    if (!hold) this.scheduleRetry();
  }

  resume() {
    this.held = false;
    if (!this.stopped && this.state === "offline") this.retryNow();
  }

  retryNow() {
    this.clearRetry();
    this.attempt = 0;
    this.retry();
  }

  send(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(obj));
      return true;
    }
    return false;
  }

  connect() {
    const token = this.getToken();
    if (!token || this.stopped) return;
    this.setState("connecting");
    // The token goes as a subprotocol, not in the URL: the browser prints the URL of a
    // socket that fails to connect in the console, and proxies log URLs.
    const ws = new WebSocket(this.getUrl(), ["courier", `bearer.${token}`]);
    this.ws = ws;
    let openedAt = 0;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      openedAt = Date.now();
      this.needsCheck = false;
      this.setState("online");
      this.startPing();
      this.onOpen();
    };
    ws.onmessage = (event) => {
      if (this.ws !== ws) return;
      this.clearPongTimer(); // any frame proves the connection is alive
      let data;
      try {
        data = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      if (!data || typeof data !== "object" || data.type === "pong") return;
      this.onMessage(data);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return; // abandoned on purpose
      this.ws = null;
      this.stopPing();
      if (this.stopped) return;
      this.setState("offline");
      if (event.code === TOKEN_EXPIRED) {
        this.stopped = true;
        this.onTokenExpired();
        return;
      }
      if (openedAt && Date.now() - openedAt >= this.timings.stableAfter) this.attempt = 0; // a stable socket
      this.needsCheck = !openedAt || !PLAIN_CLOSES.has(event.code);
      if (!this.held) this.scheduleRetry();
    };
  }

  async retry() {
    this.retryTimer = null;
    this.retryAt = null;
    if (this.stopped || this.held) return;
    if (this.needsCheck) {
      this.setState("connecting");
      try {
        await this.beforeRetry();
      } catch (err) {
        if (this.stopped || this.held) return;
        this.setState("offline");
        this.scheduleRetry();
        return;
      }
      if (this.stopped || this.held) return;
      this.needsCheck = false;
    }
    this.connect();
  }

  scheduleRetry() {
    this.clearRetry();
    const delay = Math.round(backoffDelay(this.attempt, this.timings.backoffBase, this.timings.backoffMax));
    this.attempt = Math.min(this.attempt + 1, 16);
    this.retryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => this.retry(), delay);
    this.setState("offline");
  }

  clearRetry() {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retryAt = null;
  }

  abandon() {
    const ws = this.ws;
    this.ws = null;
    this.stopPing();
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close();
      } catch (err) {
        /* already closing */
      }
    }
  }

  startPing() {
    this.stopPing();
    this.pingTimer = setInterval(() => {
      if (!this.send({ type: "ping" })) return;
      if (!this.pongTimer) {
        this.pongTimer = setTimeout(() => {
          // No answer: the connection is dead even if the browser has not noticed.
          this.pongTimer = null;
          this.needsCheck = false;
          this.abandon();
          this.setState("offline");
          if (!this.held) this.scheduleRetry();
        }, this.timings.pongTimeout);
      }
    }, this.timings.pingEvery);
  }

  clearPongTimer() {
    if (this.pongTimer) clearTimeout(this.pongTimer);
    this.pongTimer = null;
  }

  stopPing() {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
    this.clearPongTimer();
  }

  setState(state) {
    this.state = state;
    this.onState(state, this.retryAt);
  }
}
