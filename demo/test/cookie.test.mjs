// Strategy Client: two app instances (two frontend pods) with cookie sessions sealed by one
// keyring directory laid out as the operator's Secret volume is (key-<n>, current). The
// rotation steps are the operator's: stage a key, make it current, retire the oldest.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync, unlinkSync } from "node:fs";
import { randomBytes } from "node:crypto";
import os from "node:os";
import path from "node:path";
import { createApp, COOKIE_NAME } from "../app.mjs";
import { loadConfig } from "../config.mjs";
import { cookieSession, open, readKeyring, seal, COOKIE_LIMIT_BYTES } from "../cookie-session.mjs";

const dir = mkdtempSync(path.join(os.tmpdir(), "sp-keyring-"));
const servers = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

after(() => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
  rmSync(dir, { recursive: true, force: true });
});

const writeKey = (n) => writeFileSync(path.join(dir, `key-${n}`), randomBytes(32));
const setCurrent = (n) => writeFileSync(path.join(dir, "current"), `${n}\n`);
// The app re-reads the keyring at most once a second.
const propagated = () => sleep(1100);

async function startApp(name, extraEnv = {}) {
  const config = loadConfig({ SESSIONPLANE_KEYRING_DIR: dir, POD_NAME: name, SESSIONPLANE_STRATEGY: "Client", ...extraEnv });
  const server = await new Promise((resolve) => {
    const s = createApp(config, null).listen(0, "127.0.0.1", () => resolve(s));
  });
  servers.push(server);
  return `http://127.0.0.1:${server.address().port}`;
}

const cookieOf = (res) => res.headers.get("set-cookie").split(";")[0];
const keyIdOf = (cookie) => cookie.slice(COOKIE_NAME.length + 1).split(".")[1];
const post = (url, cookie, body) =>
  fetch(url, { method: "POST", headers: { "content-type": "application/json", ...(cookie ? { cookie } : {}) }, body: body ? JSON.stringify(body) : undefined });
const me = async (base, cookie) => {
  const res = await fetch(`${base}/api/me`, { headers: { cookie } });
  return { status: res.status, body: await res.json() };
};

writeKey(1);
setCurrent(1);

test("any replica reads and updates a cookie written by another; no store needed", async () => {
  const a = await startApp("pod-a");
  const b = await startApp("pod-b");
  assert.equal((await fetch(`${a}/readyz`)).status, 200);
  let res = await post(`${a}/api/login`, null, { user: "alice" });
  assert.equal(res.status, 200);
  let cookie = cookieOf(res);
  for (let i = 1; i <= 4; i++) {
    res = await post(`${i % 2 ? b : a}/api/increment`, cookie);
    assert.equal(res.status, 200);
    assert.equal((await res.json()).counter, i);
    cookie = cookieOf(res);
  }
  assert.deepEqual(await me(a, cookie), { status: 200, body: { user: "alice", counter: 4, pod: "pod-a" } });
  // The cookie is opaque: the user name is not readable in it.
  assert.doesNotMatch(cookie, /alice/);
});

test("a rotation (stage, make current, retire) logs nobody out", async () => {
  const a = await startApp("pod-a");
  const b = await startApp("pod-b");
  let res = await post(`${a}/api/login`, null, { user: "bob" });
  let cookie = cookieOf(res);
  assert.equal(keyIdOf(cookie), "1");

  writeKey(2); // staged: every pod can open key 2 before any pod seals with it
  await propagated();
  res = await post(`${b}/api/increment`, cookie);
  cookie = cookieOf(res);
  assert.equal(keyIdOf(cookie), "1", "a staged key does not seal yet");

  setCurrent(2);
  await propagated();
  assert.deepEqual((await me(a, cookie)).body.counter, 1, "a cookie sealed with the previous key still opens");
  res = await post(`${a}/api/increment`, cookie);
  cookie = cookieOf(res);
  assert.equal(keyIdOf(cookie), "2", "new cookies are sealed with the current key");

  unlinkSync(path.join(dir, "key-1")); // retired
  await propagated();
  assert.deepEqual(await me(b, cookie), { status: 200, body: { user: "bob", counter: 2, pod: "pod-b" } });
});

test("a tampered, foreign, unknown-key or expired cookie is refused with the reason", async () => {
  const a = await startApp("pod-a", { SESSIONPLANE_SESSION_TTL_SECONDS: "60" });
  const res = await post(`${a}/api/login`, null, { user: "carol" });
  const cookie = cookieOf(res);
  const value = cookie.slice(COOKIE_NAME.length + 1);

  const [v, id, body] = value.split(".");
  const flipped = Buffer.from(body, "base64url");
  flipped[flipped.length - 20] ^= 1;
  let r = await me(a, `${COOKIE_NAME}=${v}.${id}.${flipped.toString("base64url")}`);
  assert.deepEqual([r.status, r.body.cookie], [401, "tampered"]);

  r = await me(a, `${COOKIE_NAME}=${v}.9.${body}`);
  assert.deepEqual([r.status, r.body.cookie], [401, "unknown key"]);

  r = await me(a, `${COOKIE_NAME}=garbage`);
  assert.deepEqual([r.status, r.body.cookie], [401, "malformed"]);

  // Sealed with a key of another keyring: authentication fails.
  const foreign = { keys: new Map([[id, randomBytes(32)]]), current: id };
  r = await me(a, `${COOKIE_NAME}=${seal(foreign, COOKIE_NAME, { u: "carol", c: 99, exp: Date.now() + 60_000 })}`);
  assert.deepEqual([r.status, r.body.cookie], [401, "tampered"]);

  // Expiry is inside the sealed part: a cookie past it is refused even if the browser sends it.
  const ring = readKeyring(dir);
  const expired = seal(ring, COOKIE_NAME, { u: "carol", c: 5, exp: Date.now() - 1 });
  r = await me(a, `${COOKIE_NAME}=${expired}`);
  assert.deepEqual([r.status, r.body.cookie], [401, "expired"]);
  assert.equal(open(ring, COOKIE_NAME, expired, Date.now() - 10_000).session.c, 5, "the same cookie opened before its expiry");
});

test("a session too large for a cookie is refused at save with a clear error", async () => {
  const a = await startApp("pod-a", { SESSIONPLANE_MAX_SESSION_BYTES: "64" });
  const res = await post(`${a}/api/login`, null, { user: "x".repeat(60) });
  assert.equal(res.status, 500);
  assert.match((await res.json()).error, /session is \d+ bytes, above maxSessionBytes 64/);
  // The browser limit is the hard one, whatever maxSessionBytes says.
  const middleware = cookieSession({ name: COOKIE_NAME, keyring: () => readKeyring(dir), ttlSeconds: 60, maxSessionBytes: 1 << 20, secure: false });
  const req = { headers: {} };
  const set = [];
  middleware(req, { locals: {}, cookie: (...args) => set.push(args) }, () => {});
  req.session.user = "y".repeat(3200);
  const err = await new Promise((resolve) => req.session.save(resolve));
  assert.match(err?.message ?? "", new RegExp(`session is \\d+ bytes as a cookie, above the browsers' ${COOKIE_LIMIT_BYTES}`));
  assert.equal(set.length, 0, "no cookie is set");
  req.session.user = "y".repeat(2000);
  assert.equal(await new Promise((resolve) => req.session.save(resolve)), undefined);
  assert.equal(set.length, 1);
});

test("a keyring without keys, or whose current key is missing, is not ready", async () => {
  const empty = mkdtempSync(path.join(os.tmpdir(), "sp-keyring-empty-"));
  try {
    assert.throws(() => readKeyring(empty), /no key-<n> files/);
    writeFileSync(path.join(empty, "key-3"), randomBytes(32));
    writeFileSync(path.join(empty, "current"), "4");
    assert.throws(() => readKeyring(empty), /current key 4 has no key-4 file/);
    writeFileSync(path.join(empty, "key-4"), randomBytes(16));
    assert.throws(() => readKeyring(empty), /key-4 has 16 bytes, want 32/);
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});
