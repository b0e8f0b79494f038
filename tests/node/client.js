// A wss:// client with the `ws` package: sends the texts and the binary given on the
// command line's JSON, waits for an answer to each, then closes with 1000.
// Run as: node --tls-keylog=KEYS client.js URL JSON  (the key log is Node's own).
const WebSocket = require("ws");
const [url, json] = process.argv.slice(2);
const { texts, binary } = JSON.parse(json);
const ws = new WebSocket(url, { rejectUnauthorized: false, servername: "localhost" });
let answers = 0;
ws.on("open", () => {
  for (const t of texts) ws.send(t);
  ws.send(Buffer.from(binary));
});
ws.on("message", () => {
  answers += 1;
  if (answers === texts.length + 1) ws.close(1000, "bye from node");
});
ws.on("close", () => process.exit(0));
ws.on("error", (err) => { console.error(String(err)); process.exit(1); });
setTimeout(() => { console.error("timed out"); process.exit(2); }, 20000);
