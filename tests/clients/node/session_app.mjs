// An Express app keeping its sessions in the store through express-session and
// connect-redis, driven end to end: log in, read the session on later requests (as a
// replicated frontend would, through a second app instance), log out, and watch a
// session expire. Prints "NODE SESSION CHECK OK" and exits 0 when everything held.
//
// Environment: STORE_URL (redis://[:password@]host:port), optionally STORE_URL_2 for the
// second app instance (another node of the store).

import express from "express";
import session from "express-session";
import { RedisStore } from "connect-redis";
import { createClient } from "redis";
import assert from "node:assert/strict";

const storeUrl = process.env.STORE_URL ?? "redis://127.0.0.1:6379";
const storeUrl2 = process.env.STORE_URL_2 ?? storeUrl;
// Long enough that a loaded CI machine finishes the steps before a session expires,
// short enough to watch the expiry at the end.
const MAX_AGE_MS = 8000;

async function startApp(url, name) {
  const client = createClient({ url });
  client.on("error", (err) => console.error(`${name} redis client error:`, err.message));
  await client.connect();
  const store = new RedisStore({ client, prefix: "sess:" });
  const app = express();
  app.use(
    session({
      store,
      secret: "test-secret",
      resave: false,
      saveUninitialized: false,
      cookie: { maxAge: MAX_AGE_MS },
    }),
  );
  app.post("/login", (req, res) => {
    req.session.user = req.query.user;
    req.session.visits = 0;
    res.send("ok");
  });
  app.get("/me", (req, res) => {
    if (!req.session.user) return res.status(401).send("anonymous");
    req.session.visits += 1;
    res.json({ user: req.session.user, visits: req.session.visits, served_by: name });
  });
  app.post("/logout", (req, res) => {
    req.session.destroy((err) => (err ? res.status(500).send(err.message) : res.send("bye")));
  });
  const server = await new Promise((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  return { client, store, server, base: `http://127.0.0.1:${server.address().port}` };
}

function cookieOf(res) {
  const raw = res.headers.get("set-cookie");
  assert.ok(raw, "login sets a cookie");
  return raw.split(";")[0];
}

function sidOf(cookie) {
  const value = decodeURIComponent(cookie.split("=")[1]);
  return value.slice(2).split(".")[0];
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const a = await startApp(storeUrl, "app-a");
  const b = await startApp(storeUrl2, "app-b");
  try {
    // Log in on one frontend, read the session on both.
    let res = await fetch(`${a.base}/login?user=alice`, { method: "POST" });
    assert.equal(res.status, 200);
    // express-session sends the headers and all but the last byte of the body before its
    // store write completes: only the whole body means the session is saved.
    await res.text();
    const cookie = cookieOf(res);
    const sid = sidOf(cookie);
    for (const [i, app] of [a, b, a, b].entries()) {
      res = await fetch(`${app.base}/me`, { headers: { cookie } });
      assert.equal(res.status, 200, `request ${i} sees the session`);
      const body = await res.json();
      assert.equal(body.user, "alice");
      assert.equal(body.visits, i + 1, "each request sees the previous one's write");
    }
    const ttl = await a.client.ttl(`sess:${sid}`);
    assert.ok(ttl >= 1 && ttl <= MAX_AGE_MS / 1000, `session key has the cookie's TTL, got ${ttl}`);

    // connect-redis's SCAN + MGET paths.
    const ids = await a.store.ids();
    assert.ok(ids.includes(sid), "ids() lists the session");
    const all = await a.store.all();
    assert.ok(all.some((s) => s.user === "alice"), "all() returns the session");
    assert.ok((await a.store.length()) >= 1);

    // Log out: the session is gone everywhere.
    res = await fetch(`${b.base}/login?user=bob`, { method: "POST" });
    const bob = cookieOf(res);
    await res.text();
    res = await fetch(`${a.base}/me`, { headers: { cookie: bob } });
    assert.equal(res.status, 200);
    await res.text(); // this request's session save ends before its last byte
    assert.equal((await fetch(`${a.base}/logout`, { method: "POST", headers: { cookie: bob } })).status, 200);
    assert.equal((await fetch(`${b.base}/me`, { headers: { cookie: bob } })).status, 401);
    assert.equal(await a.client.exists(`sess:${sidOf(bob)}`), 0);

    // Expiry: after maxAge without requests, the session is gone.
    await sleep(MAX_AGE_MS + 1500);
    res = await fetch(`${b.base}/me`, { headers: { cookie } });
    assert.equal(res.status, 401, "expired session is not served");
    assert.equal(await a.client.exists(`sess:${sid}`), 0, "expired session key is gone");
    console.log("NODE SESSION CHECK OK");
  } finally {
    for (const app of [a, b]) {
      app.server.close();
      await app.client.quit().catch(() => {});
    }
  }
}

main().catch((err) => {
  console.error("NODE SESSION CHECK FAILED:", err);
  process.exit(1);
});
