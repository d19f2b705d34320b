// Settings from the environment. The operator injects REDIS_URL (with the password from the
// store Secret), SESSIONPLANE_STORE_ADDR, REDIS_PASSWORD, SESSIONPLANE_STRATEGY and
// SESSIONPLANE_SESSION_TTL_SECONDS into the frontend container; outside Kubernetes the same
// variables (or their defaults) point the app at any Redis-protocol server.

function intAtLeast(min, env, name, fallback) {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  return n;
}
const positiveInt = (...args) => intAtLeast(1, ...args);

// The operator injects both the parts (SESSIONPLANE_STORE_ADDR, REDIS_PASSWORD) and
// REDIS_URL, which it builds by plain $(REDIS_PASSWORD) substitution; the parts win because
// here the password is percent-encoded, so any character in it is safe. REDIS_URL alone
// (outside Kubernetes, or another Redis) is used as given.
export function storeUrl(env) {
  if (env.SESSIONPLANE_STORE_ADDR) {
    const password = env.REDIS_PASSWORD ? `:${encodeURIComponent(env.REDIS_PASSWORD)}@` : "";
    return `redis://${password}${env.SESSIONPLANE_STORE_ADDR}/0`;
  }
  return env.REDIS_URL || "redis://127.0.0.1:6379/0";
}

// The URL without its password, for logs and the page footer.
export function redactedUrl(url) {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparsable store URL)";
  }
}

export function loadConfig(env = process.env) {
  return {
    port: positiveInt(env, "PORT", 8080),
    storeUrl: storeUrl(env),
    // Every replica must sign cookies with the same secret, or a request landing on another
    // pod would not find its session. Set SESSION_SECRET in production.
    sessionSecret: env.SESSION_SECRET || "sessionplane-demo-not-a-secret",
    ttlSeconds: positiveInt(env, "SESSIONPLANE_SESSION_TTL_SECONDS", positiveInt(env, "SESSION_TTL_SECONDS", 3600)),
    requestTimeoutMs: positiveInt(env, "REQUEST_TIMEOUT_MS", 5000),
    // How long /readyz stays 200 after the store was last seen working (demo/store.mjs).
    storeReadyGraceMs: intAtLeast(0, env, "STORE_READY_GRACE_MS", 10000),
    podName: env.POD_NAME || env.HOSTNAME || "local",
    strategy: env.SESSIONPLANE_STRATEGY || "(not set)",
    secureCookie: env.COOKIE_SECURE === "true",
    // Strategy Client: sessions in cookies sealed with this keyring, no store.
    keyringDir: env.SESSIONPLANE_KEYRING_DIR || null,
    maxSessionBytes: positiveInt(env, "SESSIONPLANE_MAX_SESSION_BYTES", 4096),
  };
}
