// Where the cookie limit bites for strategy Client: seals sessions of growing size with the
// demo's own cookie code (demo/cookie-session.mjs) and prints, as JSON, the cookie's bytes for
// each session size and the largest session (JSON bytes) that still fits the browsers'
// 4096-byte cookie. Run by hack/compare-strategies.sh; needs nothing but Node.
import { randomBytes } from "node:crypto";
import { seal, COOKIE_LIMIT_BYTES } from "../../demo/cookie-session.mjs";

const NAME = "sp.sid";
const keyring = { keys: new Map([["1", randomBytes(32)]]), current: "1" };

// A session of exactly n JSON bytes: the demo's fields plus padding in the user name.
function sessionOf(n) {
  const base = { u: "", c: 12345, exp: Date.now() + 3600_000 };
  const pad = n - Buffer.byteLength(JSON.stringify(base));
  if (pad < 0) return null;
  return { ...base, u: "x".repeat(pad) };
}
const cookieBytes = (n) => NAME.length + 1 + seal(keyring, NAME, sessionOf(n)).length;

let lo = 64;
let hi = 8192;
while (lo < hi) {
  const mid = Math.ceil((lo + hi) / 2);
  if (cookieBytes(mid) <= COOKIE_LIMIT_BYTES) lo = mid;
  else hi = mid - 1;
}
const sizes = [64, 256, 1024, 2048, lo, lo + 1].map((n) => ({ session_bytes: n, cookie_bytes: cookieBytes(n) }));
console.log(JSON.stringify({ cookie_limit_bytes: COOKIE_LIMIT_BYTES, largest_session_bytes: lo, sizes }, null, 2));
