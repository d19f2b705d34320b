// Strategy Client: the session lives in the browser, in a cookie encrypted and authenticated
// with AES-256-GCM (Node's crypto) under a key from the keyring the operator keeps in the
// `<name>-keyring` Secret, mounted at SESSIONPLANE_KEYRING_DIR.
//
// Keyring files (the contract with the operator, docs/strategies.md):
//   key-<n>   32 random bytes; n grows by one per rotation
//   current   the decimal n of the key that seals new cookies (absent: the highest n)
// A key appears (staged) before it becomes current, so every pod can open cookies sealed
// with it by the time any pod seals with it; old keys stay until they age out, so a
// rotation logs nobody out.
//
// Cookie value: v1.<n>.<base64url(nonce(12) | ciphertext | tag(16))>, additional data
// "sp.sid/v1/<n>", plaintext JSON {u, c, exp}. The expiry is inside the sealed part, so it
// cannot be extended by editing the cookie. Browsers keep at most 4096 bytes of name and
// value per cookie; a session that would not fit is refused at save with a clear error.
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

export const COOKIE_LIMIT_BYTES = 4096;
const VERSION = "v1";
const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const RELOAD_MS = 1000;

export class KeyringError extends Error {}

// Reads the keyring directory. Kubernetes swaps a Secret volume's files atomically (a
// symlink flip), so one listing sees one version of the Secret.
export function readKeyring(dir) {
  const keys = new Map();
  let current = null;
  for (const name of readdirSync(dir)) {
    const m = /^key-(\d+)$/.exec(name);
    if (m) {
      const bytes = readFileSync(path.join(dir, name));
      if (bytes.length !== KEY_BYTES) throw new KeyringError(`keyring ${dir}: ${name} has ${bytes.length} bytes, want ${KEY_BYTES}`);
      keys.set(m[1], bytes);
    } else if (name === "current") {
      current = readFileSync(path.join(dir, name), "utf8").trim();
    }
  }
  if (keys.size === 0) throw new KeyringError(`keyring ${dir}: no key-<n> files`);
  if (current === null) current = [...keys.keys()].sort((a, b) => Number(a) - Number(b)).at(-1);
  if (!keys.has(current)) throw new KeyringError(`keyring ${dir}: current key ${current} has no key-${current} file`);
  return { keys, current };
}

// The keyring, re-read at most once a second so a rotation reaches a running pod without a
// restart; a failed re-read keeps the last good keyring (and says so once).
export function keyringSource(dir, log = console) {
  let cached = null;
  let loadedAt = 0;
  let lastError = null;
  return () => {
    const now = Date.now();
    if (cached && now - loadedAt < RELOAD_MS) return cached;
    try {
      cached = readKeyring(dir);
      lastError = null;
    } catch (err) {
      if (!cached) throw err;
      if (lastError !== err.message) log.error(`keyring: ${err.message}; keeping the last good keyring`);
      lastError = err.message;
    }
    loadedAt = now;
    return cached;
  };
}

const aad = (cookieName, keyId) => Buffer.from(`${cookieName}/${VERSION}/${keyId}`);

export function seal(keyring, cookieName, data) {
  const keyId = keyring.current;
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv("aes-256-gcm", keyring.keys.get(keyId), nonce);
  cipher.setAAD(aad(cookieName, keyId));
  const body = Buffer.concat([nonce, cipher.update(JSON.stringify(data), "utf8"), cipher.final(), cipher.getAuthTag()]);
  return `${VERSION}.${keyId}.${body.toString("base64url")}`;
}

// The session in a cookie value, or null with the reason (unknown key, tampered, expired).
export function open(keyring, cookieName, value, now = Date.now()) {
  const parts = typeof value === "string" ? value.split(".") : [];
  if (parts.length !== 3 || parts[0] !== VERSION) return { session: null, reason: "malformed" };
  const [, keyId, b64] = parts;
  const key = keyring.keys.get(keyId);
  if (!key) return { session: null, reason: "unknown key" };
  const body = Buffer.from(b64, "base64url");
  if (body.length < NONCE_BYTES + TAG_BYTES) return { session: null, reason: "malformed" };
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, body.subarray(0, NONCE_BYTES));
    decipher.setAAD(aad(cookieName, keyId));
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
    const plain = Buffer.concat([decipher.update(body.subarray(NONCE_BYTES, body.length - TAG_BYTES)), decipher.final()]);
    const data = JSON.parse(plain.toString("utf8"));
    if (typeof data?.exp !== "number" || data.exp <= now) return { session: null, reason: "expired" };
    return { session: data, reason: null };
  } catch {
    return { session: null, reason: "tampered" };
  }
}

function readCookie(header, name) {
  for (const part of (header ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

// Middleware giving req.session the part of express-session's interface the app uses
// (user, counter, regenerate, save, destroy), kept in the cookie instead of a store.
export function cookieSession({ name, keyring, ttlSeconds, maxSessionBytes, secure }) {
  const cookieOptions = { path: "/", httpOnly: true, sameSite: "lax", secure, maxAge: ttlSeconds * 1000 };
  return (req, res, next) => {
    let ring;
    try {
      ring = keyring();
    } catch (err) {
      return next(err);
    }
    const raw = readCookie(req.headers.cookie, name);
    const opened = raw === undefined ? { session: null, reason: null } : open(ring, name, raw);
    if (opened.reason) res.locals.cookieRejected = opened.reason;
    const session = {
      user: opened.session?.u,
      counter: opened.session?.c,
      regenerate(cb) {
        this.user = undefined;
        this.counter = undefined;
        cb();
      },
      save(cb) {
        const plain = { u: this.user, c: this.counter, exp: Date.now() + ttlSeconds * 1000 };
        const plainBytes = Buffer.byteLength(JSON.stringify(plain));
        if (plainBytes > maxSessionBytes) return cb(sizeError(`session is ${plainBytes} bytes, above maxSessionBytes ${maxSessionBytes}`));
        let value;
        try {
          value = seal(keyring(), name, plain);
        } catch (err) {
          return cb(err);
        }
        const cookieBytes = name.length + 1 + value.length;
        if (cookieBytes > COOKIE_LIMIT_BYTES) return cb(sizeError(`session is ${cookieBytes} bytes as a cookie, above the browsers' ${COOKIE_LIMIT_BYTES}`));
        res.cookie(name, value, cookieOptions);
        cb();
      },
      destroy(cb) {
        this.user = undefined;
        this.counter = undefined;
        res.clearCookie(name, { path: "/" });
        cb();
      },
    };
    req.session = session;
    next();
  };
}

function sizeError(message) {
  const err = new Error(message);
  err.status = 500;
  err.expose = true;
  return err;
}
