// The Redis-protocol client behind the session store: reconnects with capped exponential
// backoff, and fails commands at once while disconnected (no offline queue), so a request
// gets a 503 instead of hanging while the store is away.
import { createClient } from "redis";

const MAX_BACKOFF_MS = 2000;

export function backoffMs(retries) {
  return Math.min(50 * 2 ** Math.min(retries, 10), MAX_BACKOFF_MS);
}

export function createStoreClient(url, log = console) {
  const client = createClient({
    url,
    disableOfflineQueue: true,
    socket: {
      connectTimeout: 3000,
      keepAlive: true,
      reconnectStrategy: (retries) => backoffMs(retries),
    },
  });
  let lastError = null;
  client.on("error", (err) => {
    // Log state changes, not every retry of the same failure.
    if (lastError !== err.message) log.error(`store: ${err.message}`);
    lastError = err.message;
  });
  client.on("ready", () => {
    if (lastError !== null) log.log("store: connected again");
    lastError = null;
  });
  return client;
}

// When the store was last seen working: at a (re)connect, at every PING answered, and at
// the moment a working connection dropped (it worked until then). Readiness
// (app.mjs) forgives a gap shorter than its grace: every frontend loses the store at the
// same moment when a store pod goes away, and failing them all would empty the Service,
// turning a reconnect of a few milliseconds into refused connections for every user.
export function storeHealth(client, now = Date.now) {
  let lastGoodAt = null;
  let connected = false;
  const good = () => {
    lastGoodAt = now();
  };
  client.on("ready", () => {
    connected = true;
    good();
  });
  const lost = () => {
    if (connected) good();
    connected = false;
  };
  client.on("error", lost);
  client.on("end", lost);
  return {
    good,
    // Milliseconds since the store was last seen working; null when it never was.
    sinceGood: () => (lastGoodAt === null ? null : now() - lastGoodAt),
  };
}

// Connects in the background: the HTTP server starts at once and /readyz says when the
// store is reachable.
export function connectInBackground(client, log = console) {
  client.connect().catch((err) => log.error(`store: first connect failed: ${err.message}`));
}

export async function ping(client, timeoutMs) {
  if (!client.isReady) throw new Error("not connected to the session store");
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`store PING timed out after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([client.ping(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
