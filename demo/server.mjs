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

const client = createStoreClient(config.storeUrl);
connectInBackground(client);
const server = createApp(config, client).listen(config.port, () => {
  console.log(`demo frontend ${config.podName} on :${config.port}, store ${redactedUrl(config.storeUrl)}, session TTL ${config.ttlSeconds}s`);
});
server.keepAliveTimeout = 5000;

// A crash would log every user out of this pod's in-flight requests; log and carry on.
process.on("unhandledRejection", (err) => console.error(`unhandled rejection: ${err?.message ?? err}`));

function shutdown(signal) {
  console.log(`${signal}: draining`);
  server.close(() => {
    client.close?.().catch?.(() => {});
    process.exit(0);
  });
  server.closeIdleConnections?.();
  setTimeout(() => process.exit(0), 10000).unref();
}
process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));
