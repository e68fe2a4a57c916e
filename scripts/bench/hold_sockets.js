#!/usr/bin/env node
'use strict';
// hold_sockets.js — register (or reuse) N users, open one WebSocket each and keep them open for
// S seconds, counting the frames they get; for "N sockets on one gateway while load.js pushes".
// Run from the bench work dir (it needs its node_modules: ws, undici):
//   cd ~/.cache/im-bench && node $COURIER/scripts/bench/hold_sockets.js \
//       --base http://127.0.0.1:8811 --n 20000 --seconds 120 [--users-file f.json] [--save-users f.json]
// Prints one JSON line: sockets opened, handshake p50/p99, frames received, sockets closed early.
const path = require('path');
const fs = require('fs');
const req = (m) => require(path.join(process.cwd(), 'node_modules', m));
const WebSocket = req('ws');
const { Pool } = req('undici');

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
const base = args.base || 'http://127.0.0.1:8811';
const N = Number(args.n || 20000);
const SECONDS = Number(args.seconds || 120);
const CONC = Number(args.concurrency || 32);
setTimeout(() => { console.error('hold_sockets: time is up'); process.exit(3); }, (SECONDS + 900) * 1000).unref();

const pool = new Pool(base, { connections: CONC });
async function http(method, p, body, token) {
  const r = await pool.request({ method, path: '/api/v1' + p, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: body ? JSON.stringify(body) : undefined });
  const text = await r.body.text();
  return { status: r.statusCode, json: text ? JSON.parse(text) : null };
}
async function inParallel(items, fn) {
  let i = 0;
  await Promise.all(Array.from({ length: CONC }, async () => { while (i < items.length) { const k = i++; await fn(items[k], k); } }));
}
const pct = (a, p) => { if (!a.length) return null; const s = [...a].sort((x, y) => x - y); return +s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))].toFixed(2); };

(async () => {
  let users;
  if (args['users-file'] && fs.existsSync(args['users-file'])) {
    users = JSON.parse(fs.readFileSync(args['users-file'], 'utf8')).slice(0, N);
  } else {
    const prefix = `h${Math.random().toString(36).slice(2, 7)}_`;
    users = Array.from({ length: N }, (_, i) => ({ username: `${prefix}${i}`, password: `pw-${prefix}${i}` }));
    const t0 = Date.now();
    await inParallel(users, async (u) => {
      const r = await http('POST', '/users/register', { username: u.username, password: u.password });
      if (r.status !== 201) throw new Error(`register: ${r.status}`);
      const l = await http('POST', '/users/login', { username: u.username, password: u.password });
      u.token = l.json.token; u.user_id = l.json.user_id;
    });
    console.error(`registered ${N} users in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    if (args['save-users']) fs.writeFileSync(args['save-users'], JSON.stringify(users));
  }
  const wsBase = base.replace(/^http/, 'ws');
  const hs = []; let frames = 0; let closedEarly = 0; let failed = 0;
  const sockets = [];
  const t1 = Date.now();
  await inParallel(users, (u) => new Promise((resolve) => {
    const t = performance.now();
    const ws = new WebSocket(`${wsBase}/ws?token=${encodeURIComponent(u.token)}`, { perMessageDeflate: false });
    ws.on('open', () => { hs.push(performance.now() - t); sockets.push(ws); resolve(); });
    ws.on('message', () => { frames++; });
    ws.on('close', () => { if (!ws.done) closedEarly++; });
    ws.on('error', () => { failed++; resolve(); });
  }));
  console.error(`opened ${sockets.length} sockets in ${((Date.now() - t1) / 1000).toFixed(1)} s; holding ${SECONDS} s`);
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  for (const ws of sockets) { ws.done = true; ws.close(); }
  console.log(JSON.stringify({ scenario: 'hold', n: N, opened: sockets.length, failed, closed_early: closedEarly, frames,
    handshake_ms: { p50: pct(hs, 50), p99: pct(hs, 99) } }));
  await pool.close();
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
