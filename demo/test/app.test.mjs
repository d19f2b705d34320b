// The demo against a real Redis-protocol server: the project's memory-node example (the
// store's protocol front; path in DEMO_TEST_STORE, default target/debug/examples/memory-node)
// when built, else redis-server. Two app instances share the store, as two frontend pods
// would. Run: npm test (or node --test test/); hack/test.sh runs it with the example built.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import net from "node:net";
import { createApp, COOKIE_NAME, SERVED_BY_HEADER } from "../app.mjs";
import { loadConfig, storeUrl, redactedUrl } from "../config.mjs";
import { createStoreClient, connectInBackground, backoffMs } from "../store.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const memoryNode = process.env.DEMO_TEST_STORE ?? path.resolve(here, "../../target/debug/examples/memory-node");
const PASSWORD = "demo-test-pw";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const quiet = { log() {}, error() {} };

// A port from listen(0)-and-close can be handed to an outgoing connection before the
// store binds it; these come from below the kernel's ephemeral range (32768 up).
let nextPort = 16000 + ((process.pid * 997) % 16768);
async function freePort() {
  for (let i = 0; i < 16768; i++) {
    const port = nextPort;
    nextPort = nextPort + 1 >= 32768 ? 16000 : nextPort + 1;
    const free = await new Promise((resolve) => {
      const s = net.createServer().listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
      s.on("error", () => resolve(false));
    });
    if (free) return port;
  }
  throw new Error("no free loopback port in 16000..32767");
}

async function startStore(port) {
  const [cmd, args] = existsSync(memoryNode)
    ? [memoryNode, ["--listen", `127.0.0.1:${port}`, "--password", PASSWORD]]
    : ["redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--requirepass", PASSWORD]];
  const proc = spawn(cmd, args, { stdio: "ignore" });
  for (let i = 0; i < 100; i++) {
    const up = await new Promise((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => { s.destroy(); resolve(true); });
      s.on("error", () => resolve(false));
    });
    if (up) return proc;
    await sleep(50);
  }
  proc.kill("SIGKILL");
  throw new Error(`${cmd} did not listen on ${port} within 5 s`);
}

// SIGSTOP stops a multi-threaded store only once the kernel has scheduled one of its
// threads to take the signal; until then its other threads go on answering. On a busy
// machine that is long enough to serve a request sent just after kill(), so wait until
// every thread is stopped.
async function freeze(proc) {
  proc.kill("SIGSTOP");
  const dir = `/proc/${proc.pid}/task`;
  const allStopped = () => readdirSync(dir).every((t) => /^\d+ \(.*\) T /.test(readFileSync(`${dir}/${t}/stat`, "utf8")));
  await waitFor(`store process ${proc.pid} stopped`, async () => allStopped(), 500);
}

// A Redis-protocol relay that, once told to, holds everything after the next SET until
// released: a store that answers reads and then keeps a write waiting, at one exact point.
async function holdingRelay(targetPort) {
  const relay = { holding: false, held: [], sockets: [] };
  relay.server = net.createServer((client) => {
    const upstream = net.connect(targetPort, "127.0.0.1");
    relay.sockets.push(client, upstream);
    upstream.pipe(client);
    client.on("data", (chunk) => {
      if (relay.held.length || (relay.holding && chunk.includes("SET"))) relay.held.push([upstream, chunk]);
      else upstream.write(chunk);
    });
    for (const s of [client, upstream]) s.on("error", () => {});
  });
  await new Promise((resolve) => relay.server.listen(0, "127.0.0.1", resolve));
  relay.port = relay.server.address().port;
  relay.release = () => {
    relay.holding = false;
    for (const [upstream, chunk] of relay.held.splice(0)) upstream.write(chunk);
  };
  relay.close = () => {
    for (const s of relay.sockets) s.destroy();
    relay.server.close();
  };
  return relay;
}

async function waitFor(what, fn, tries = 100) {
  for (let i = 0; i < tries; i++) {
    if (await fn()) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

let storePort, store;
const apps = [];

// The readiness grace is cut to 1.5 s (10 s by default) to keep the tests short.
const READY_GRACE_MS = 1500;

async function startApp(name, port = storePort, { waitReady = true } = {}) {
  const config = loadConfig({ REDIS_URL: `redis://:${PASSWORD}@127.0.0.1:${port}/0`, POD_NAME: name, REQUEST_TIMEOUT_MS: "2000", STORE_READY_GRACE_MS: String(READY_GRACE_MS) });
  const client = createStoreClient(config.storeUrl, quiet);
  connectInBackground(client, quiet);
  const server = await new Promise((resolve) => {
    const s = createApp(config, client).listen(0, "127.0.0.1", () => resolve(s));
  });
  const app = { client, server, base: `http://127.0.0.1:${server.address().port}` };
  apps.push(app);
  if (waitReady) await waitFor(`${name} ready`, async () => (await fetch(`${app.base}/readyz`)).status === 200);
  return app;
}

before(async () => {
  storePort = await freePort();
  store = await startStore(storePort);
});

after(async () => {
  for (const a of apps) {
    a.server.closeAllConnections();
    a.server.close();
    await a.client.close().catch(() => {});
  }
  store?.kill("SIGKILL");
});

const cookieOf = (res) => res.headers.get("set-cookie").split(";")[0];
const post = (url, cookie, body) =>
  fetch(url, { method: "POST", headers: { "content-type": "application/json", ...(cookie ? { cookie } : {}) }, body: body ? JSON.stringify(body) : undefined });

test("config: address and encoded password win over REDIS_URL; TTL from the operator's variable", () => {
  assert.equal(storeUrl({ REDIS_URL: "redis://x:1" }), "redis://x:1");
  assert.equal(storeUrl({ SESSIONPLANE_STORE_ADDR: "s:6379", REDIS_PASSWORD: "p@ss/:#", REDIS_URL: "redis://:p@ss/:#@s:6379/0" }), "redis://:p%40ss%2F%3A%23@s:6379/0");
  assert.equal(storeUrl({ SESSIONPLANE_STORE_ADDR: "s:6379" }), "redis://s:6379/0");
  assert.equal(storeUrl({}), "redis://127.0.0.1:6379/0");
  assert.equal(loadConfig({ SESSIONPLANE_SESSION_TTL_SECONDS: "60" }).ttlSeconds, 60);
  assert.equal(loadConfig({}).ttlSeconds, 3600);
  assert.throws(() => loadConfig({ PORT: "-1" }), /PORT/);
  assert.equal(redactedUrl("redis://:secret@h:1/0"), "redis://:***@h:1/0");
  assert.equal(backoffMs(0), 50);
  assert.equal(backoffMs(100), 2000);
});

test("a session written through one pod is read and updated through another", async () => {
  const a = await startApp("pod-a");
  const b = await startApp("pod-b");
  let res = await post(`${a.base}/api/login`, null, { user: "alice" });
  assert.equal(res.status, 200);
  const cookie = cookieOf(res);
  assert.ok(cookie.startsWith(`${COOKIE_NAME}=`));
  for (let i = 1; i <= 6; i++) {
    const app = i % 2 ? b : a;
    res = await post(`${app.base}/api/increment`, cookie);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { user: "alice", counter: i, pod: i % 2 ? "pod-b" : "pod-a" });
  }
  res = await fetch(`${a.base}/api/me`, { headers: { cookie } });
  assert.deepEqual(await res.json(), { user: "alice", counter: 6, pod: "pod-a" });
  // The HTML page shows the same.
  const html = await (await fetch(`${b.base}/`, { headers: { cookie } })).text();
  assert.match(html, /Logged in as alice/);
  assert.match(html, /id="counter">6</);
  assert.match(html, /pod-b/);
  // Logout ends the session everywhere.
  assert.equal((await post(`${b.base}/api/logout`, cookie)).status, 200);
  assert.equal((await fetch(`${a.base}/api/me`, { headers: { cookie } })).status, 401);
});

test("API answers say how long the session read and write took (Server-Timing)", async () => {
  const a = apps[0];
  let res = await post(`${a.base}/api/login`, null, { user: "timed" });
  const cookie = cookieOf(res);
  res = await post(`${a.base}/api/increment`, cookie);
  assert.equal(res.status, 200);
  const timing = res.headers.get("server-timing");
  const m = /^session-read;dur=(\d+\.\d{3}), session-write;dur=(\d+\.\d{3})$/.exec(timing ?? "");
  assert.ok(m, `Server-Timing of an increment: ${timing}`);
  assert.ok(Number(m[1]) >= 0 && Number(m[2]) > 0, timing);
  res = await fetch(`${a.base}/api/me`, { headers: { cookie } });
  assert.match(res.headers.get("server-timing") ?? "", /^session-read;dur=\d+\.\d{3}$/, "a read has no write");
});

test("every response names the pod that answered", async () => {
  const a = await startApp("pod-served-a");
  const b = await startApp("pod-served-b");
  assert.equal((await fetch(`${a.base}/healthz`)).headers.get(SERVED_BY_HEADER), "pod-served-a");
  assert.equal((await fetch(`${b.base}/`)).headers.get(SERVED_BY_HEADER), "pod-served-b");
  assert.equal((await fetch(`${b.base}/api/me`)).headers.get(SERVED_BY_HEADER), "pod-served-b");
});

test("HTML form flow: login page, login, increment, logout", async () => {
  const a = apps[0];
  let res = await fetch(`${a.base}/`);
  assert.match(await res.text(), /name="username"/);
  res = await fetch(`${a.base}/login`, { method: "POST", redirect: "manual", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "username=%3Cb%3Ebob" });
  assert.equal(res.status, 303);
  const cookie = cookieOf(res);
  res = await fetch(`${a.base}/increment`, { method: "POST", redirect: "manual", headers: { cookie } });
  assert.equal(res.status, 303);
  const html = await (await fetch(`${a.base}/`, { headers: { cookie } })).text();
  assert.match(html, /Logged in as &lt;b&gt;bob/, "the name is escaped");
  assert.match(html, /id="counter">1</);
  res = await fetch(`${a.base}/logout`, { method: "POST", redirect: "manual", headers: { cookie } });
  assert.equal(res.status, 303);
  assert.match(await (await fetch(`${a.base}/`, { headers: { cookie } })).text(), /name="username"/);
});

test("bad input is a 4xx; no session is a 401", async () => {
  const a = apps[0];
  assert.equal((await post(`${a.base}/api/login`, null, { user: "" })).status, 400);
  assert.equal((await post(`${a.base}/api/login`, null, { user: "x".repeat(65) })).status, 400);
  assert.equal((await post(`${a.base}/api/increment`, null)).status, 401);
  assert.equal((await fetch(`${a.base}/api/me`)).status, 401);
  const res = await fetch(`${a.base}/api/login`, { method: "POST", headers: { "content-type": "application/json" }, body: "{not json" });
  assert.equal(res.status, 400);
});

test("store down: 503 and not ready, no crash; store back: the app reconnects", async () => {
  const a = apps[0];
  let res = await post(`${a.base}/api/login`, null, { user: "carol" });
  const cookie = cookieOf(res);
  store.kill("SIGKILL");
  const lost = Date.now();
  // Every frontend loses the store at once: a short gap must not take them all out of the
  // Service, so /readyz stays 200 (and says why) for the grace, then turns 503.
  const during = await fetch(`${a.base}/readyz`);
  assert.equal(during.status, 200);
  assert.match(await during.text(), /store unreachable for \d+ ms .* within the 1500 ms grace/);
  await waitFor("readyz 503", async () => (await fetch(`${a.base}/readyz`)).status === 503);
  assert.ok(Date.now() - lost >= READY_GRACE_MS - 200, `not ready only after the grace (${Date.now() - lost} ms)`);
  assert.equal((await fetch(`${a.base}/healthz`)).status, 200, "the process stays alive");
  res = await post(`${a.base}/api/increment`, cookie);
  assert.equal(res.status, 503);
  assert.match((await res.json()).error, /session store unavailable/);
  store = await startStore(storePort);
  await waitFor("readyz 200 again", async () => (await fetch(`${a.base}/readyz`)).status === 200, 100);
  // The store restarted empty (memory only): the session is gone, the app says so cleanly.
  res = await post(`${a.base}/api/increment`, cookie);
  assert.equal(res.status, 401);
  res = await post(`${a.base}/api/login`, null, { user: "carol" });
  assert.equal(res.status, 200);
});

test("a frontend whose store never answered is not ready: the grace starts at the first answer", async () => {
  const deaf = await freePort();
  const a = await startApp("pod-no-store", deaf, { waitReady: false });
  for (let i = 0; i < 5; i++) {
    const res = await fetch(`${a.base}/readyz`);
    assert.equal(res.status, 503);
    assert.match(await res.text(), /not ready/);
    await sleep(100);
  }
});

test("config: the readiness grace is a non-negative integer", () => {
  assert.equal(loadConfig({}).storeReadyGraceMs, 10000);
  assert.equal(loadConfig({ STORE_READY_GRACE_MS: "0" }).storeReadyGraceMs, 0);
  assert.throws(() => loadConfig({ STORE_READY_GRACE_MS: "-5" }), /STORE_READY_GRACE_MS must be an integer >= 0/);
});

test("a request answered 503 on timeout saves nothing when the store answers later", async () => {
  const a = apps[0];
  let res = await post(`${a.base}/api/login`, null, { user: "dave" });
  const cookie = cookieOf(res);
  assert.equal((await post(`${a.base}/api/increment`, cookie)).status, 200);
  // The store is frozen, not gone: the session read waits past the app's 2 s deadline.
  await freeze(store);
  try {
    res = await post(`${a.base}/api/increment`, cookie);
    assert.equal(res.status, 503);
    assert.match(await res.text(), /did not answer within 2000 ms/);
  } finally {
    store.kill("SIGCONT");
  }
  // The PING behind readyz queues after the late read on the same connection, so once it
  // answers, any save the late request made has reached the store before the next read.
  await waitFor("readyz 200 after the store resumes", async () => (await fetch(`${a.base}/readyz`)).status === 200);
  res = await fetch(`${a.base}/api/me`, { headers: { cookie } });
  assert.deepEqual(await res.json(), { user: "dave", counter: 1, pod: "pod-a" });
});

test("a save the store keeps waiting is waited out past the deadline and answered with its outcome", async () => {
  const relay = await holdingRelay(storePort);
  try {
    const a = await startApp("pod-held", relay.port);
    let res = await post(`${a.base}/api/login`, null, { user: "erin" });
    const cookie = cookieOf(res);
    // Read the whole answer: express-session ends a response only once its own save or
    // touch is done, and that write must not be the one held.
    assert.equal((await res.json()).counter, 0);
    relay.holding = true;
    const pending = post(`${a.base}/api/increment`, cookie);
    // Past the app's 2 s deadline the save is still out: no answer yet, since a 503 now
    // would let the client move on while the save can still land.
    const early = await Promise.race([pending.then(() => "answered"), sleep(3000).then(() => "waiting")]);
    assert.equal(early, "waiting");
    relay.release();
    res = await pending;
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { user: "erin", counter: 1, pod: "pod-held" });
    res = await post(`${a.base}/api/increment`, cookie);
    assert.deepEqual(await res.json(), { user: "erin", counter: 2, pod: "pod-held" });
  } finally {
    relay.release();
    relay.close();
  }
});
