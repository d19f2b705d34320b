// The Express app: login page and per-user counter, kept in an express-session session that
// connect-redis stores through the Redis protocol (strategies Store, Sticky, Replicated), or
// in an encrypted cookie sealed with the operator's keyring (strategy Client, when
// SESSIONPLANE_KEYRING_DIR is set). Writes are saved before the response goes out, so a 200
// means the store acknowledged the new counter (or the new cookie is in the answer).
import express from "express";
import session from "express-session";
import { RedisStore } from "connect-redis";
import { ping, storeHealth } from "./store.mjs";
import { cookieSession, keyringSource } from "./cookie-session.mjs";
import { counterPage, loginPage } from "./views.mjs";

export const COOKIE_NAME = "sp.sid";
const MAX_USER_LENGTH = 64;

const promisify = (fn) => new Promise((resolve, reject) => fn((err) => (err ? reject(err) : resolve())));

function validUser(raw) {
  const user = typeof raw === "string" ? raw.trim() : "";
  return user.length > 0 && user.length <= MAX_USER_LENGTH ? user : null;
}

// A request that the store keeps waiting gets a 503 rather than an open connection. From
// then on the request is abandoned: the client was told it failed (or hung up and is not
// listening), so a store call that answers later must not go on to save. Without this, a
// slow read followed by a save lands an increment the client counted as failed, after the
// client's next, acknowledged one.
//
// A store write already sent (save, regenerate, destroy) is different: it is waited out,
// and the request answers with its outcome, late if need be. Answering 503 while the write
// is in flight would let the client move on (its next request perhaps on another replica)
// while the write could still land, after and over what came next. The store bounds how
// long one command may take (its command timeout), so this wait is bounded too.
function requestTimeout(ms) {
  return (req, res, next) => {
    res.locals.answerTimeout = () => {
      res.locals.abandoned = true;
      if (!res.headersSent) {
        // Detach the session first: express-session holds back the end of any response
        // whose loaded session it still means to save or touch, and that save would wait on
        // the very store this request gave up on, so the 503 would hang with it.
        req.session = null;
        res.status(503).type("text/plain").send(`session store did not answer within ${ms} ms\n`);
      }
    };
    const timer = setTimeout(() => {
      if (res.locals.writing) res.locals.timedOut = true;
      else res.locals.answerTimeout();
    }, ms);
    res.on("close", () => {
      clearTimeout(timer);
      if (!res.writableFinished) res.locals.abandoned = true;
    });
    next();
  };
}

class RequestAbandoned extends Error {}

// Before a store call: the request is still wanted. One whose time ran out while an
// earlier write was waited out gets its 503 now, and starts nothing more.
function ensureWanted(res) {
  if (res.locals.timedOut && !res.locals.abandoned) res.locals.answerTimeout();
  if (res.locals.abandoned || res.headersSent) {
    throw new RequestAbandoned("the request timed out or the client went away before the save; nothing saved");
  }
}

// A store write (save, regenerate, destroy), waited out even past the request's timeout.
async function storeWrite(res, write) {
  res.locals.writing = (res.locals.writing ?? 0) + 1;
  try {
    await promisify(write);
  } finally {
    res.locals.writing -= 1;
  }
  // The client hung up while the write was out: nobody is listening for the answer. (Its
  // next request may have reached the store first, so a client must wait longer than a
  // write can take; the end-to-end load generator does.)
  if (res.locals.abandoned || res.headersSent) {
    throw new RequestAbandoned("the client went away while its store write was in flight; the write completed");
  }
}

async function startSession(req, res, user) {
  // A fresh session id at login (no session fixation), then an explicit save so the
  // response is only sent once the store has the session.
  ensureWanted(res);
  await storeWrite(res, (cb) => req.session.regenerate(cb));
  ensureWanted(res);
  req.session.user = user;
  req.session.counter = 0;
  await storeWrite(res, (cb) => req.session.save(cb));
}

async function increment(req, res) {
  ensureWanted(res);
  req.session.counter = (req.session.counter ?? 0) + 1;
  const started = performance.now();
  await storeWrite(res, (cb) => req.session.save(cb));
  res.locals.sessionWriteMs = performance.now() - started;
  return req.session.counter;
}

// How long this request waited for its session: the read (the session middleware's load,
// from the store or the cookie) and the write (the save), as a Server-Timing header, so a
// load generator sees the session layer's own latency apart from the network and the app.
// The strategy comparison (hack/compare-strategies.sh) reads it.
function sessionTimingStart(req, res, next) {
  res.locals.sessionReadStarted = performance.now();
  next();
}
function sessionTimingRead(req, res, next) {
  res.locals.sessionReadMs = performance.now() - res.locals.sessionReadStarted;
  next();
}
export function serverTiming(locals) {
  const parts = [];
  if (locals.sessionReadMs !== undefined) parts.push(`session-read;dur=${locals.sessionReadMs.toFixed(3)}`);
  if (locals.sessionWriteMs !== undefined) parts.push(`session-write;dur=${locals.sessionWriteMs.toFixed(3)}`);
  return parts.join(", ");
}
function withTiming(res) {
  const header = serverTiming(res.locals);
  if (header) res.set("Server-Timing", header);
  return res;
}

async function endSession(req, res) {
  if (req.session) await storeWrite(res, (cb) => req.session.destroy(cb));
  res.clearCookie(COOKIE_NAME, { path: "/" });
}

/** The response header naming the pod that answered. */
export const SERVED_BY_HEADER = "X-Served-By";

export function createApp(config, client) {
  const info = { pod: config.podName, strategy: config.strategy };
  const app = express();
  app.disable("x-powered-by");
  // Which pod answered, on every response: how the routing tests (hack/e2e/routing.sh) see
  // where a proxy's affinity sent each request.
  app.use((req, res, next) => {
    res.set(SERVED_BY_HEADER, config.podName);
    next();
  });

  // Health checks come before the session middleware: they never touch a session.
  app.get("/healthz", (req, res) => res.type("text/plain").send("ok\n"));
  const keyring = config.keyringDir ? keyringSource(config.keyringDir) : null;
  const health = client ? storeHealth(client) : null;
  app.get("/readyz", async (req, res) => {
    try {
      if (keyring) keyring();
      else {
        await ping(client, 1000);
        health.good();
      }
      res.type("text/plain").send("ok\n");
    } catch (err) {
      // Ready once the store answered; then a gap shorter than the grace keeps the pod in
      // the Service (see storeHealth): its requests get a fast 503 meanwhile.
      const since = health?.sinceGood() ?? null;
      if (since !== null && since < config.storeReadyGraceMs) {
        res.type("text/plain").send(`ok: store unreachable for ${since} ms (${err.message}), within the ${config.storeReadyGraceMs} ms grace\n`);
        return;
      }
      res.status(503).type("text/plain").send(`not ready: ${err.message}\n`);
    }
  });

  app.use(requestTimeout(config.requestTimeoutMs));
  app.use(express.urlencoded({ extended: false, limit: "4kb" }));
  app.use(express.json({ limit: "4kb" }));
  app.use(sessionTimingStart);
  if (keyring) {
    app.use(
      cookieSession({
        name: COOKIE_NAME,
        keyring,
        ttlSeconds: config.ttlSeconds,
        maxSessionBytes: config.maxSessionBytes,
        secure: config.secureCookie,
      }),
    );
  } else {
    app.use(
      session({
        name: COOKIE_NAME,
        store: new RedisStore({ client, prefix: "sp:sess:", ttl: config.ttlSeconds }),
        secret: config.sessionSecret,
        resave: false,
        saveUninitialized: false,
        cookie: { maxAge: config.ttlSeconds * 1000, httpOnly: true, sameSite: "lax", secure: config.secureCookie },
      }),
    );
  }
  app.use(sessionTimingRead);

  // HTML pages.
  app.get("/", (req, res) => {
    res.set("Cache-Control", "no-store");
    if (!req.session.user) return res.type("html").send(loginPage(info));
    res.type("html").send(counterPage(info, req.session.user, req.session.counter ?? 0));
  });
  app.post("/login", async (req, res) => {
    const user = validUser(req.body?.username);
    if (!user) return res.status(400).type("html").send(loginPage(info, `a name of 1 to ${MAX_USER_LENGTH} characters, please`));
    await startSession(req, res, user);
    res.redirect(303, "/");
  });
  app.post("/increment", async (req, res) => {
    if (!req.session.user) return res.redirect(303, "/");
    await increment(req, res);
    res.redirect(303, "/");
  });
  app.post("/logout", async (req, res) => {
    await endSession(req, res);
    res.redirect(303, "/");
  });

  // JSON API for load generators and tests. A cookie session that was refused says why
  // (expired, tampered, unknown key), which the Client strategy's tests check.
  const notLoggedIn = (res) =>
    res.status(401).json({ error: "not logged in", pod: info.pod, ...(res.locals.cookieRejected ? { cookie: res.locals.cookieRejected } : {}) });
  const me = (req) => ({ user: req.session.user, counter: req.session.counter ?? 0, pod: info.pod });
  app.post("/api/login", async (req, res) => {
    const user = validUser(req.body?.user);
    if (!user) return res.status(400).json({ error: `user must be a string of 1 to ${MAX_USER_LENGTH} characters` });
    await startSession(req, res, user);
    res.json(me(req));
  });
  app.get("/api/me", (req, res) => {
    if (!req.session.user) return notLoggedIn(res);
    withTiming(res).json(me(req));
  });
  app.post("/api/increment", async (req, res) => {
    if (!req.session.user) return notLoggedIn(res);
    await increment(req, res);
    withTiming(res).json(me(req));
  });
  app.post("/api/logout", async (req, res) => {
    await endSession(req, res);
    res.json({ ok: true, pod: info.pod });
  });

  // Client errors keep their status; anything else came from the session store (reads,
  // saves, regenerate, destroy) and is a 503: the app stays up and says why.
  app.use((err, req, res, next) => {
    if (err instanceof RequestAbandoned) return console.error(`${req.method} ${req.path}: ${err.message}`);
    if (res.headersSent) return next(err);
    if (err.expose && err.status >= 500) {
      // The app's own limit (a session too large for a cookie), not the store.
      console.error(`${req.method} ${req.path}: ${err.message}`);
      if (req.path.startsWith("/api/")) return res.status(err.status).json({ error: err.message, pod: info.pod });
      return res.status(err.status).type("text/plain").send(`${err.message}\n`);
    }
    const status = err.status >= 400 && err.status < 500 ? err.status : 503;
    const message = status === 503 ? `session store unavailable: ${err.message}` : err.message;
    if (status === 503) console.error(`${req.method} ${req.path}: ${message}`);
    if (req.path.startsWith("/api/")) return res.status(status).json({ error: message, pod: info.pod });
    res.status(status).type("text/plain").send(`${message}\n`);
  });
  return app;
}
