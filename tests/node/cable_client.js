// ActionCable conversations with the official client, @rails/actioncable, over
// the `ws` package, for tests/test_app_actioncable_live.py. Run as:
// node cable_client.js URL JSON, where URL is the server's cable endpoint and
// JSON gives {room, says: [text], token, url_token, idle_ms, timeout_ms}.
//
// Three consumers, one after the other where the order matters:
// - "anon": no user in the query: the server refuses it (disconnect, unauthorized);
// - "bob": a token in his URL, subscribes to the room with another in its
//   identifier, hears alice;
// - "alice": subscribes to the room and to a forbidden one (rejected), performs
//   "speak" once per text (the server transmits an echo and broadcasts to the
//   room), stays quiet for a while (server pings), unsubscribes, disconnects;
//   then bob performs "leave" and the server closes (disconnect, remote).
//
// It prints one JSON object: every WebSocket message each consumer sent or
// received, raw, in order ("wire", by consumer), the subprotocol and extensions
// each connection agreed, how it closed (the server's close code) and what the
// subscriptions' callbacks saw (the test's truth).
const WebSocket = require("ws");

// The browser globals actioncable touches: addEventListener/removeEventListener
// (the connection monitor's "visibilitychange"); `document` only for relative
// URLs and <meta> configuration, neither used here.
global.addEventListener = () => {};
global.removeEventListener = () => {};
const ActionCable = require("@rails/actioncable");

const [url, json] = process.argv.slice(2);
const plan = JSON.parse(json);
const version = require("./version");
const log = { wire: {}, opened: {}, closes: {}, callbacks: {},
              actioncable: version("@rails/actioncable"), ws: version("ws") };
const fail = (why) => { console.error(why); process.exit(1); };
setTimeout(() => fail("timed out: " + JSON.stringify(log)), Number(plan.timeout_ms || 20000));

// ws, recording each message as it goes out or comes in, per consumer (the tag
// in the URL's query)
const closed = {};
class RecordedWebSocket extends WebSocket {
  constructor(address, protocols) {
    super(address, protocols);
    const tag = new URL(address).searchParams.get("tag");
    this.wire = log.wire[tag] = log.wire[tag] || [];
    this.on("open", () => {
      log.opened[tag] = { protocol: this.protocol, extensions: this.extensions };
    });
    this.on("message", (data, binary) => {
      this.wire.push({ direction: "s2c", text: Buffer.from(data).toString("utf8"), binary });
    });
    this.on("close", (code, reason) => {
      log.closes[tag] = { code, reason: reason.toString("utf8") };
      if (closed[tag]) closed[tag]();
    });
  }

  send(data, ...rest) {
    this.wire.push({ direction: "c2s", text: String(data) });
    return super.send(data, ...rest);
  }
}
ActionCable.adapters.WebSocket = RecordedWebSocket;

const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const closing = (tag) => new Promise((resolve) => { closed[tag] = resolve; });
const consumer = (tag, user, extra = {}) => {
  const query = new URLSearchParams({ ...(user ? { user } : {}), tag, ...extra });
  log.callbacks[tag] = [];
  return ActionCable.createConsumer(`${url}?${query}`);
};
// A subscription whose callbacks are recorded; resolves once confirmed or rejected.
const subscribe = (tag, cable, params, received) => new Promise((resolve) => {
  const seen = log.callbacks[tag];
  const sub = cable.subscriptions.create(params, {
    connected(info) { seen.push({ callback: "connected", params, info }); resolve(sub); },
    rejected() { seen.push({ callback: "rejected", params }); resolve(sub); },
    disconnected(info) { seen.push({ callback: "disconnected", params, info }); },
    received(data) { seen.push({ callback: "received", params, data }); if (received) received(data); },
  });
});

(async () => {
  // Refused: the server's Connection#connect finds no user.
  const anon = consumer("anon", null);
  const anonClosed = closing("anon");
  anon.connect();
  await anonClosed;

  const room = { channel: "ChatChannel", room: plan.room };
  // the usual way to authenticate an API client: a token in the cable URL
  const bob = consumer("bob", "bob", { token: plan.url_token });
  const bobHeard = [];
  const bobSub = await subscribe("bob", bob, { ...room, token: plan.token },
                                 (data) => bobHeard.push(data));

  const alice = consumer("alice", "alice");
  const aliceGot = [];
  const aliceSub = await subscribe("alice", alice, room, (data) => aliceGot.push(data));
  await subscribe("alice", alice, { channel: "ChatChannel", room: "forbidden" });
  for (const [i, body] of plan.says.entries()) {
    aliceSub.perform("speak", { body });
    // the echo (to alice) and the broadcast (to both)
    while (aliceGot.length < 2 * (i + 1) || bobHeard.length < i + 1) await wait(20);
  }
  // Quiet: the server's heart-beat pings (every 3 s) are all that goes.
  await wait(plan.idle_ms);
  aliceSub.unsubscribe();
  await wait(200);
  const aliceClosed = closing("alice");
  alice.disconnect();
  await aliceClosed;

  // The server closes this one: disconnect (remote), then the close.
  const bobClosed = closing("bob");
  bobSub.perform("leave");
  await bobClosed;
  process.stdout.write(JSON.stringify(log) + "\n");
  process.exit(0);
})().catch((err) => fail(String(err && err.stack)));
