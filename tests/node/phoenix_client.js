// A Phoenix channels conversation with phoenix (the Phoenix framework's
// JavaScript client) over the `ws` package, for tests/test_app_js_live.py.
// Run as: node phoenix_client.js URL JSON, where URL is the socket's mount
// (ws://host:port/socket; phoenix.js adds /websocket and vsn) and JSON gives
// {heartbeat_ms, idle_ms, timeout_ms, note, topic, secret_topic, bytes_hex,
// socket_token, auth_token}.
//
// The client logs, as one JSON object on stdout, each message it handed the
// socket to send ("pushed", before phoenix.js encodes it), each message as
// phoenix.js decoded it ("got"), what the channel callbacks saw ("did"), and
// every WebSocket message it sent or received, raw ("wire"): the test's truth.
// Binary payloads (ArrayBuffer) are written as {hex}.
const WebSocket = require("ws");
const { Socket } = require("phoenix");

const [url, json] = process.argv.slice(2);
const plan = JSON.parse(json);
const version = require("./version");
const log = { pushed: [], got: [], did: [], wire: [], phoenix: version("phoenix"), ws: version("ws") };
const fail = (why) => { console.error(why); process.exit(1); };
setTimeout(() => fail("timed out: " + JSON.stringify(log)), Number(plan.timeout_ms || 20000));

const hex = (buffer) => ({ hex: Buffer.from(buffer).toString("hex") });
const plain = (value) => {
  if (value instanceof ArrayBuffer) return hex(value);
  if (value === undefined) return null;
  if (value === null || typeof value !== "object") return value;
  const out = {};
  for (const [k, v] of Object.entries(value)) out[k] = plain(v);
  return out;
};
const message = (m) => ({ join_ref: m.join_ref === undefined ? null : m.join_ref,
                          ref: m.ref === undefined ? null : m.ref,
                          topic: m.topic, event: m.event, payload: plain(m.payload) });

// ws as phoenix.js's transport, recording each message either way.
class Recorded extends WebSocket {
  constructor(address, protocols, options) {
    super(address, protocols, options);
    log.url = address;
    log.protocols = protocols;
    this.on("message", (data, binary) => {
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      log.wire.push(binary ? { direction: "s2c", binary, hex: bytes.toString("hex") }
                           : { direction: "s2c", binary, text: bytes.toString("utf8") });
    });
    this.on("close", (code, reason) => { log.close = { code, reason: String(reason) }; });
  }

  send(data, ...rest) {
    log.wire.push(typeof data === "string" ? { direction: "c2s", binary: false, text: data }
                                           : { direction: "c2s", binary: true, ...hex(data) });
    return super.send(data, ...rest);
  }
}

const socket = new Socket(url, {
  transport: Recorded,
  // the documented way to authenticate a socket: a token among its params
  // (phoenix.js puts them in the URI), or since 1.8 authToken (in a subprotocol)
  params: { user: "bob", token: plan.socket_token },
  authToken: plan.auth_token,
  heartbeatIntervalMs: plan.heartbeat_ms,
  rejoinAfterMs: () => 60000, // no rejoin of the refused channel while the test runs
  reconnectAfterMs: () => 60000,
});
const push = socket.push.bind(socket);
socket.push = (data, channel) => {
  log.pushed.push(message(data));
  return push(data, channel);
};
socket.onMessage((m) => log.got.push(message(m)));
socket.onError((e) => fail("socket error " + String(e && e.message)));

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// A push (or join, or leave) and the status its reply came with.
const answer = (what, p) => new Promise((resolve) => {
  const entry = { what };
  log.did.push(entry);
  for (const status of ["ok", "error", "timeout"]) {
    p.receive(status, (response) => {
      entry.status = status;
      entry.response = plain(response);
      resolve(entry);
    });
  }
});

async function main() {
  await new Promise((resolve) => { socket.onOpen(resolve); socket.connect(); });
  const channel = socket.channel(plan.topic, { user: "bob", color: "blue" });
  const events = [];
  let seen;
  const allSeen = new Promise((resolve) => { seen = resolve; });
  for (const event of ["new_msg", "binary_news"]) {
    channel.on(event, (payload) => {
      events.push({ event, payload: plain(payload) });
      if (events.length === 4) seen();
    });
  }
  await answer("join", channel.join());
  await answer("push new_msg", channel.push("new_msg", { body: plan.note }));
  await answer("push fail", channel.push("fail", { why: "on purpose" }));
  const bytes = Uint8Array.from(Buffer.from(plan.bytes_hex, "hex")).buffer;
  await answer("push upload", channel.push("upload", bytes));
  await allSeen; // a broadcast and a push, each as JSON and as binary
  log.did.push({ what: "events", events });
  const refused = socket.channel(plan.secret_topic, { token: "not-a-secret" });
  await answer("join refused", refused.join());
  log.did.push({ what: "sleep", ms: plan.idle_ms }); // heartbeats only
  await sleep(plan.idle_ms);
  await answer("leave", channel.leave());
  await sleep(100); // phx_close
  await new Promise((resolve) => socket.disconnect(resolve, 1000, "bye"));
  await sleep(100);
  process.stdout.write(JSON.stringify(log) + "\n");
  process.exit(0);
}

main().catch((e) => fail(String((e && e.stack) || e) + "\n" + JSON.stringify(log)));
