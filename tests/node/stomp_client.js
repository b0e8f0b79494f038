// A STOMP conversation with @stomp/stompjs over the `ws` package, for
// tests/test_app_stomp_live.py. Run as: node stomp_client.js URL JSON, where
// JSON gives {login, passcode, host, destination, sends: [{headers, body}]}.
//
// The client logs, as one JSON object on stdout, what it did (the frames it
// asked stompjs to send) and what it got (each frame as stompjs parsed it),
// plus every WebSocket message it sent or received, raw: the test's truth.
const WebSocket = require("ws");
Object.assign(global, { WebSocket }); // stompjs looks for the browser's global
const { Client } = require("@stomp/stompjs");

const [url, json] = process.argv.slice(2);
const plan = JSON.parse(json);
const version = require("./version");
const log = { asked: [], got: [], wire: [], stompjs: version("@stomp/stompjs"),
              ws: version("ws") };
const frame = (f) => ({ command: f.command, headers: { ...f.headers }, body: f.body });
const fail = (why) => { console.error(why); process.exit(1); };
setTimeout(() => fail("timed out"), Number(plan.timeout_ms || 20000));

const client = new Client({
  webSocketFactory: () => {
    const ws = new WebSocket(url, ["v12.stomp", "v11.stomp", "v10.stomp"]);
    const send = ws.send.bind(ws);
    ws.send = (data, ...rest) => {
      log.wire.push({ direction: "c2s", text: String(data) });
      return send(data, ...rest);
    };
    ws.on("message", (data, binary) => {
      // a Buffer, or an ArrayBuffer once stompjs sets binaryType
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      log.wire.push({ direction: "s2c", text: bytes.toString("utf8"), binary });
    });
    ws.on("close", (code) => {
      log.close = code;
      process.stdout.write(JSON.stringify(log) + "\n");
      process.exit(0);
    });
    return ws;
  },
  connectHeaders: { login: plan.login, passcode: plan.passcode, host: plan.host },
  // Heart-beats both ways, so that the capture holds some (a lone EOL each).
  heartbeatIncoming: plan.heartbeat_ms, heartbeatOutgoing: plan.heartbeat_ms,
  reconnectDelay: 0,
  debug: () => {},
});
client.onStompError = (f) => fail("STOMP ERROR " + JSON.stringify(frame(f)));
client.onWebSocketError = (e) => fail("WebSocket error " + String(e && e.message));

const asked = (command, headers, body) => log.asked.push({ command, headers, body });
const receipt = (id) => new Promise((resolve) => client.watchForReceipt(id, (f) => {
  log.got.push(frame(f));
  resolve();
}));

client.onConnect = async (connected) => {
  log.got.push(frame(connected));
  const sub = { id: "sub-0", ack: "client-individual", receipt: "receipt-subscribe" };
  const subscribed = receipt(sub.receipt);
  let pending = plan.sends.length;
  let allIn;
  const all = new Promise((resolve) => { allIn = resolve; });
  asked("SUBSCRIBE", { destination: plan.destination, ...sub });
  client.subscribe(plan.destination, (message) => {
    log.got.push(frame(message));
    asked("ACK", { id: message.headers.ack });
    message.ack();
    pending -= 1;
    if (pending === 0) allIn();
  }, sub);
  await subscribed;
  for (const s of plan.sends) {
    const headers = { destination: plan.destination, ...s.headers };
    const done = headers.receipt ? receipt(headers.receipt) : null;
    asked("SEND", headers, s.body);
    client.publish({ destination: plan.destination, headers: s.headers, body: s.body });
    if (done) await done;
  }
  await all;
  // Quiet for a while: heart-beats only.
  await new Promise((resolve) => setTimeout(resolve, plan.idle_ms));
  asked("UNSUBSCRIBE", { id: sub.id });
  client.unsubscribe(sub.id);
  asked("DISCONNECT", {});
  await client.deactivate(); // DISCONNECT with a receipt, then the close
};
asked("CONNECT", client.connectHeaders);
client.activate();
