// The Node.js `ws` peer of `python -m jupyter_rtstream.bench`.
//
//   node server.js --port P --rate R --size S [--topics K]
//
// What a performance-minded Node user writes: a `ws` WebSocketServer (perMessageDeflate off,
// TCP_NODELAY on every socket, no auth, no protocol) and a loop that builds one JSON text per
// due message and calls `send` on every open client. Messages have the shape, field order and
// size of the raw Tornado baseline's (jupyter_rtstream/bench/baseline.py: "timestamp" =
// publish time with microseconds, "topic", "seq" per topic, round-robin over K topics,
// padding to S bytes) and the pacing is a port of its RateSchedule
// (jupyter_rtstream/server/synthetic.py), so the same client measures every system.
// Prints "listening <port>" once it accepts connections; runs until SIGTERM/SIGINT.
"use strict";

const { WebSocketServer, WebSocket } = require("ws");

function arg(name, fallback) {
  const prefix = `--${name}=`;
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith(prefix)) return argv[i].slice(prefix.length);
    if (argv[i] === `--${name}` && i + 1 < argv.length) return argv[i + 1];
  }
  if (fallback === undefined) throw new Error(`--${name} is required`);
  return fallback;
}

const port = Number(arg("port"));
const rate = Number(arg("rate"));
const size = Number(arg("size", "270"));
const topicCount = Math.max(1, Number(arg("topics", "5")));
const topics = Array.from({ length: topicCount }, (_, i) => `market_data:BENCH${i}`);
const seqs = new Array(topicCount).fill(0);
let next = 0;

/** RFC 3339 UTC with microseconds, as Python's isoformat() + "Z". */
function stamp() {
  const us = Math.round((performance.timeOrigin + performance.now()) * 1000);
  const iso = new Date(Math.floor(us / 1000)).toISOString(); // ...SS.mmmZ
  return iso.slice(0, -1) + String(us % 1000).padStart(3, "0") + "Z";
}

function message() {
  const i = next;
  next = (i + 1) % topicCount;
  seqs[i] += 1;
  const head =
    `{"version":"1.0","timestamp":"${stamp()}","topic":"${topics[i]}",` +
    `"seq":${seqs[i]},"message_type":"market_data","data":{"pad":"`;
  return head + "x".repeat(Math.max(0, size - head.length - 3)) + '"}}';
}

// RateSchedule: at most 10 ms worth per wake-up, sleep >= 1 ms, drop a backlog over 1 s.
const batchSeconds = 0.01;
const maxLag = 1.0;
const minSleep = 0.001;
const maxBatch = Math.max(1, Math.floor(rate * batchSeconds));
const now = () => performance.now() / 1000;
const start = now();
let sent = 0;

function due(t) {
  let behind = Math.floor((t - start) * rate) - sent;
  if (behind > rate * maxLag) {
    sent += behind - maxBatch;
    behind = maxBatch;
  }
  return Math.max(0, Math.min(behind, maxBatch));
}

function delay(t) {
  const wait = start + (sent + 1) / rate - t;
  return wait <= 0 ? 0 : Math.max(wait, minSleep);
}

const wss = new WebSocketServer({ host: "127.0.0.1", port, perMessageDeflate: false });

wss.on("connection", (ws, request) => {
  request.socket.setNoDelay(true);
  ws.on("error", () => {});
});

function tick() {
  const n = due(now());
  for (let k = 0; k < n; k++) {
    const text = message();
    for (const client of wss.clients) {
      if (client.readyState === WebSocket.OPEN) client.send(text);
    }
  }
  sent += n;
  setTimeout(tick, delay(now()) * 1000);
}

wss.on("listening", () => {
  process.stdout.write(`listening ${port}\n`);
  if (rate > 0) setTimeout(tick, 0);
});

function stop() {
  for (const client of wss.clients) client.terminate();
  wss.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
