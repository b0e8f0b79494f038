// A SignalR conversation with @microsoft/signalr (the ASP.NET Core JavaScript
// client) over the `ws` package, for tests/test_app_js_live.py. Run as:
// node signalr_client.js URL JSON, where URL is the hub's http:// address and
// JSON gives {keepalive_ms, idle_ms, timeout_ms, note, end: "client"|"server"}.
//
// WebSockets transport, negotiation skipped, JSON hub protocol. The client
// logs, as one JSON object on stdout, what it asked the hub connection to do
// and what came of it ("did"), what the server invoked on it ("got"), and
// every WebSocket message it sent or received, raw ("wire"): the test's truth.
const WebSocket = require("ws");
const signalR = require("@microsoft/signalr");

const [url, json] = process.argv.slice(2);
const plan = JSON.parse(json);
const version = require("./version");
const log = { did: [], got: [], wire: [], signalr: version("@microsoft/signalr"), ws: version("ws") };
const fail = (why) => { console.error(why); process.exit(1); };
setTimeout(() => fail("timed out: " + JSON.stringify(log)), Number(plan.timeout_ms || 20000));

// ws as the transport's WebSocket class, recording each message either way.
class Recorded extends WebSocket {
  constructor(address, protocols, options) {
    super(address, protocols, options);
    this.on("message", (data, binary) => {
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      log.wire.push({ direction: "s2c", text: bytes.toString("utf8"), binary });
    });
    this.on("close", (code, reason) => { log.close = { code, reason: String(reason) }; });
  }

  send(data, ...rest) {
    log.wire.push({ direction: "c2s", text: String(data), binary: typeof data !== "string" });
    return super.send(data, ...rest);
  }
}

const connection = new signalR.HubConnectionBuilder()
  .withUrl(url, {
    skipNegotiation: true,
    transport: signalR.HttpTransportType.WebSockets,
    WebSocket: Recorded,
  })
  .withKeepAliveInterval(plan.keepalive_ms)
  .withServerTimeout(Number(plan.timeout_ms || 20000))
  .configureLogging(signalR.LogLevel.None)
  .build();

let received;
const broadcastBack = new Promise((resolve) => { received = resolve; });
// The server's invocations: one fire-and-forget, one that wants a result.
connection.on("ReceiveMessage", (...args) => {
  log.got.push({ target: "ReceiveMessage", arguments: args });
  received();
});
connection.on("GetValue", (x) => {
  log.got.push({ target: "GetValue", arguments: [x], result: x * 2 });
  return x * 2;
});
let closed;
const done = new Promise((resolve) => { closed = resolve; });
connection.onclose((error) => {
  log.closed = error ? String(error.message || error) : null;
  closed();
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function invoke(method, ...args) {
  const entry = { call: "invoke", method, arguments: args };
  log.did.push(entry);
  try {
    entry.result = await connection.invoke(method, ...args);
  } catch (e) {
    entry.error = String(e.message || e);
  }
}

function stream(method, args, take) {
  const entry = { call: "stream", method, arguments: args, items: [] };
  log.did.push(entry);
  return new Promise((resolve) => {
    const sub = connection.stream(method, ...args).subscribe({
      next: (item) => {
        entry.items.push(item);
        if (take !== undefined && entry.items.length === take) {
          entry.cancelled = true;
          sub.dispose(); // CancelInvocation
          resolve();
        }
      },
      complete: () => { entry.completed = true; resolve(); },
      error: (e) => { entry.error = String(e.message || e); resolve(); },
    });
  });
}

async function main() {
  await connection.start();
  await invoke("Add", 2, 3);
  await invoke("Fail", "on purpose");
  log.did.push({ call: "send", method: "Broadcast", arguments: ["bob", plan.note] });
  await connection.send("Broadcast", "bob", plan.note);
  await broadcastBack;
  await invoke("AskClient", 21);
  await stream("Counter", [3, 20]);
  await stream("Counter", [50, 100], 2);
  // A stream from the client to the hub: StreamItems and a Completion of its own.
  const subject = new signalR.Subject();
  const upload = invoke("Upload", subject);
  for (const part of ["up-1", "up-2", "up-3"]) {
    subject.next(part);
    await sleep(10);
  }
  subject.complete();
  await upload;
  log.did.push({ call: "sleep", ms: plan.idle_ms }); // pings only, both ways
  await sleep(plan.idle_ms);
  if (plan.end === "server") {
    log.did.push({ call: "send", method: "Goodbye", arguments: [] });
    await connection.send("Goodbye");
  } else {
    log.did.push({ call: "stop" });
    await connection.stop();
  }
  await done;
  await sleep(100); // the WebSocket's close, both ways
  process.stdout.write(JSON.stringify(log) + "\n");
  process.exit(0);
}

main().catch((e) => fail(String((e && e.stack) || e) + "\n" + JSON.stringify(log)));
