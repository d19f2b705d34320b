// Entry point: `node server.mjs`. Starts the HTTP server at once and connects to the store
// in the background; SIGTERM drains (stops accepting, finishes in-flight requests).
import { createApp } from "./app.mjs";
import { loadConfig, redactedUrl } from "./config.mjs";
import { connectInBackground, createStoreClient } from "./store.mjs";

let config;
try {
  config = loadConfig();
} catch (err) {
  console.error(`config: ${err.message}`);
  process.exit(2);
}

// Strategy Client keeps sessions in cookies: no store to connect to.
const client = config.keyringDir ? null : createStoreClient(config.storeUrl);
if (client) connectInBackground(client);
const where = client ? `store ${redactedUrl(config.storeUrl)}` : `cookie sessions, keyring ${config.keyringDir}`;
const server = createApp(config, client).listen(config.port, () => {
  console.log(`demo frontend ${config.podName} on :${config.port}, ${where}, session TTL ${config.ttlSeconds}s`);
});
server.keepAliveTimeout = 5000;

// A crash would log every user out of this pod's in-flight requests; log and carry on.
process.on("unhandledRejection", (err) => console.error(`unhandled rejection: ${err?.message ?? err}`));

// Kubernetes sends SIGTERM while the Service may still route new connections here for a
// moment (endpoint removal propagates asynchronously), so keep serving for
// SHUTDOWN_DELAY_MS before closing the listener; a closed port would reset those requests.
const shutdownDelayMs = Number(process.env.SHUTDOWN_DELAY_MS ?? 5000);
let shuttingDown = false;
function shutdown(signal) {
  if (shuttingDown) return;
  shuttingDown = true;
  console.log(`${signal}: serving ${shutdownDelayMs} ms more, then draining`);
  setTimeout(() => close(), shutdownDelayMs).unref();
  setTimeout(() => process.exit(0), shutdownDelayMs + 10000).unref();
}
function close() {
  server.close(() => {
    client?.close?.().catch?.(() => {});
    process.exit(0);
  });
  server.closeIdleConnections?.();
}
process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));
