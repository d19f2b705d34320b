// Load generator for the end-to-end test: N users log in through the frontend Service, then
// each increments its counter in a loop (one request in flight per user), recording every
// acknowledged counter value. The controlling script names the current phase ("steady",
// "scale-6", "delete-store-pod", ...) by writing it to PHASE_FILE; every request is counted
// in the phase it started in. Writing "stop" ends the run: each user's session is read back
// and checked against what was acknowledged, and a report is printed (plus REPORT_JSON).
//
// A write is acknowledged when /api/increment answered 200 with the new counter. A request
// that failed (5xx, reset) may or may not have reached the store: a save that failed with
// an unknown outcome may have been applied. The frontend answers a request whose save was
// sent only once the store answered that save (bounded by the store's command timeout),
// so nothing it sent lands after its answer; this client waits longer than that
// (TIMEOUT_MS), or a request it gave up on could still save over the next one's write.
// A failed request stays "in doubt" until the next acknowledgement AND for IN_DOUBT_MS
// after it failed; with k requests in doubt the stored counter may be last+0..k. The checks:
//   * lost write:  an answer (or the final read) shows less than the last acknowledged value;
//   * phantom:     more than last acknowledged + requests in doubt (+1 for the answer itself);
//   * logged out:  401 for a user who logged in (the session vanished).
//
// Environment: BASE_URL (http://ClusterIP), USERS (50), THINK_MS (200), TIMEOUT_MS (20000),
// IN_DOUBT_MS (20000), PHASE_FILE, REPORT_JSON, MAX_SECONDS (600, a hard stop).
import http from "node:http";
import { readFileSync, writeFileSync } from "node:fs";

const BASE = new URL(process.env.BASE_URL ?? "http://127.0.0.1:8080");
const USERS = Number(process.env.USERS ?? 50);
const THINK_MS = Number(process.env.THINK_MS ?? 200);
const TIMEOUT_MS = Number(process.env.TIMEOUT_MS ?? 20000);
const PHASE_FILE = process.env.PHASE_FILE;
const REPORT_JSON = process.env.REPORT_JSON;
const MAX_SECONDS = Number(process.env.MAX_SECONDS ?? 600);
const IN_DOUBT_MS = Number(process.env.IN_DOUBT_MS ?? 20000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let phase = "steady";
const phaseOrder = ["steady"];
function readPhase() {
  if (!PHASE_FILE) return;
  try {
    const p = readFileSync(PHASE_FILE, "utf8").trim();
    if (p && p !== phase) {
      phase = p;
      if (!phaseOrder.includes(p)) phaseOrder.push(p);
    }
  } catch {
    // No file yet: still the first phase.
  }
}

// One request on a fresh connection (agent: false), so each request is balanced by
// kube-proxy anew and new pods get traffic as soon as they are endpoints.
function request(method, path, cookie, body) {
  return new Promise((resolve) => {
    const payload = body ? JSON.stringify(body) : undefined;
    const headers = { accept: "application/json" };
    if (cookie) headers.cookie = cookie;
    if (payload) Object.assign(headers, { "content-type": "application/json", "content-length": Buffer.byteLength(payload) });
    const started = performance.now();
    const req = http.request({ host: BASE.hostname, port: BASE.port || 80, method, path, headers, agent: false, timeout: TIMEOUT_MS }, (res) => {
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (data += c));
      res.on("end", () => {
        let json = null;
        try {
          json = JSON.parse(data);
        } catch {
          // Not JSON (a proxy error page, say): the status tells enough.
        }
        const setCookie = res.headers["set-cookie"]?.[0]?.split(";")[0];
        resolve({ status: res.statusCode, json, setCookie, ms: performance.now() - started, timing: parseServerTiming(res.headers["server-timing"]), cookieBytes: cookie ? Buffer.byteLength(cookie) : 0 });
      });
      res.on("error", (err) => resolve({ status: 0, error: err.code ?? err.message, ms: performance.now() - started }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (err) => resolve({ status: 0, error: err.code ?? err.message, ms: performance.now() - started }));
    req.end(payload);
  });
}

// The demo's Server-Timing header: how long the frontend waited for the session read and
// the session write ({ "session-read": ms, "session-write": ms }).
function parseServerTiming(header) {
  const out = {};
  for (const part of (header ?? "").split(",")) {
    const m = /^\s*([\w-]+);dur=([\d.]+)\s*$/.exec(part);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

// Per-phase statistics.
const stats = new Map();
const failedRequests = [];
function record(ph, res) {
  if (!stats.has(ph)) stats.set(ph, { requests: 0, failures: 0, latencies: [], reads: [], writes: [], cookieBytes: 0, errors: {}, messages: [], pods: {}, started: Date.now(), ended: Date.now() });
  const s = stats.get(ph);
  s.requests += 1;
  s.ended = Date.now();
  s.latencies.push(res.ms);
  if (res.status !== 200) {
    s.failures += 1;
    // The failure window of the phase: from the start of its first failed request to the
    // end of its last one (the e2e run bounds it in the phases that kill something).
    const now = Date.now();
    s.firstFail = Math.min(s.firstFail ?? Infinity, now - res.ms);
    s.lastFail = now;
    const key = res.status ? `HTTP ${res.status}` : res.error;
    s.errors[key] = (s.errors[key] ?? 0) + 1;
    // Every failed request, with the phase it ended in as well as the one it started in:
    // a request in flight when something is killed fails after the kill phase began.
    const message = typeof res.json?.error === "string" ? res.json.error : undefined;
    if (failedRequests.length < 10000) failedRequests.push({ phase: ph, ended_in: phase, start: Math.round(now - res.ms), end: now, error: key, message });
    if (message && !s.messages.includes(message) && s.messages.length < 3) s.messages.push(message);
  } else if (res.json?.pod) {
    s.pods[res.json.pod] = (s.pods[res.json.pod] ?? 0) + 1;
  }
  if (res.timing?.["session-read"] !== undefined) s.reads.push(res.timing["session-read"]);
  if (res.timing?.["session-write"] !== undefined) s.writes.push(res.timing["session-write"]);
  s.cookieBytes += res.cookieBytes ?? 0;
}

const violations = [];
let stopping = false;

class User {
  constructor(name) {
    this.name = name;
    this.cookie = null;
    this.lastAck = 0;
    this.unacked = 0; // failed increments since lastAck
    this.failedAt = []; // when each failed increment that may still land failed (ms)
    this.lastAckAt = 0;
    this.acks = 0;
  }

  async login() {
    for (let attempt = 0; attempt < 50 && !stopping; attempt++) {
      const ph = phase;
      const res = await request("POST", "/api/login", null, { user: this.name });
      record(ph, res);
      if (res.status === 200 && res.setCookie) {
        this.cookie = res.setCookie;
        this.lastAck = res.json?.counter ?? 0;
        this.unacked = 0;
        this.failedAt = [];
        this.lastAckAt = Date.now();
        return true;
      }
      await sleep(200);
    }
    return false;
  }

  // The keyring key a Client-strategy cookie (sp.sid=v1.<key>.<sealed>) is sealed with.
  cookieKey() {
    const m = /^[^=]+=v1\.(\d+)\./.exec(this.cookie ?? "");
    return m ? Number(m[1]) : null;
  }

  // Failed increments that may still land: every one since the last acknowledgement, and
  // earlier ones that failed less than IN_DOUBT_MS ago.
  inDoubt() {
    const now = Date.now();
    this.failedAt = this.failedAt.filter((t) => t > this.lastAckAt || now - t < IN_DOUBT_MS);
    return this.failedAt.length;
  }

  async increment() {
    const ph = phase;
    const res = await request("POST", "/api/increment", this.cookie);
    record(ph, res);
    if (res.status === 200 && typeof res.json?.counter === "number") {
      const c = res.json.counter;
      const doubt = this.inDoubt();
      if (c < this.lastAck + 1) violations.push({ user: this.name, phase: ph, kind: "lost write", detail: `answer ${c} after acknowledged ${this.lastAck}` });
      else if (c > this.lastAck + 1 + doubt) violations.push({ user: this.name, phase: ph, kind: "phantom write", detail: `answer ${c}, acknowledged ${this.lastAck} + ${doubt} in doubt + 1` });
      this.lastAck = c;
      this.lastAckAt = Date.now();
      this.unacked = 0;
      this.acks += 1;
      // Strategy Client keeps the session in the cookie: every write answers a new one.
      if (res.setCookie) this.cookie = res.setCookie;
    } else if (res.status === 401) {
      violations.push({ user: this.name, phase: ph, kind: "logged out", detail: `401 after acknowledged ${this.lastAck}` });
      await this.login();
    } else {
      this.unacked += 1;
      this.failedAt.push(Date.now());
    }
  }

  async verify() {
    let res;
    for (let attempt = 0; attempt < 20; attempt++) {
      res = await request("GET", "/api/me", this.cookie);
      if (res.status === 200 || res.status === 401) break;
      await sleep(250);
    }
    const doubt = this.inDoubt();
    const out = { user: this.name, status: res.status, lastAck: this.lastAck, unacked: this.unacked, inDoubt: doubt, counter: res.json?.counter, cookieKey: this.cookieKey() };
    if (res.status !== 200) out.problem = `GET /api/me answered ${res.status || res.error}`;
    else if (res.json.user !== this.name) out.problem = `session belongs to ${res.json.user}`;
    else if (res.json.counter < this.lastAck) out.problem = `counter ${res.json.counter} < acknowledged ${this.lastAck} (lost write)`;
    else if (res.json.counter > this.lastAck + doubt) out.problem = `counter ${res.json.counter} > acknowledged ${this.lastAck} + ${doubt} in doubt`;
    return out;
  }

  async run() {
    while (!stopping) {
      await this.increment();
      await sleep(THINK_MS * (0.5 + Math.random()));
    }
  }
}

function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function summary() {
  return phaseOrder.filter((p) => stats.has(p)).map((p) => {
    const s = stats.get(p);
    const lat = [...s.latencies].sort((a, b) => a - b);
    const reads = [...s.reads].sort((a, b) => a - b);
    const writes = [...s.writes].sort((a, b) => a - b);
    const ms = (v) => Math.round(v * 100) / 100;
    return {
      phase: p,
      seconds: Math.round((s.ended - s.started) / 100) / 10,
      requests: s.requests,
      failures: s.failures,
      p50_ms: Math.round(quantile(lat, 0.5) * 10) / 10,
      p99_ms: Math.round(quantile(lat, 0.99) * 10) / 10,
      max_ms: Math.round((lat[lat.length - 1] ?? NaN) * 10) / 10,
      errors: s.errors,
      pods: Object.keys(s.pods).length,
      fail_window_s: s.failures ? Math.round((s.lastFail - s.firstFail) / 100) / 10 : 0,
      // The session layer's own latency as the frontend saw it (demo's Server-Timing).
      session_read_p50_ms: ms(quantile(reads, 0.5)),
      session_read_p99_ms: ms(quantile(reads, 0.99)),
      session_write_p50_ms: ms(quantile(writes, 0.5)),
      session_write_p99_ms: ms(quantile(writes, 0.99)),
      cookie_bytes_per_request: s.requests ? Math.round(s.cookieBytes / s.requests) : 0,
      messages: s.messages,
    };
  });
}

async function main() {
  const t0 = Date.now();
  const users = Array.from({ length: USERS }, (_, i) => new User(`user-${String(i).padStart(3, "0")}`));
  const logged = await Promise.all(users.map((u) => u.login()));
  const notLogged = logged.filter((ok) => !ok).length;
  console.log(`loadgen: ${USERS - notLogged}/${USERS} users logged in through ${BASE.origin} in ${Date.now() - t0} ms`);
  if (notLogged) {
    console.log("loadgen: FAIL some users could not log in");
    process.exit(1);
  }
  const ticker = setInterval(() => {
    readPhase();
    if (phase === "stop" || Date.now() - t0 > MAX_SECONDS * 1000) stopping = true;
  }, 200);
  await Promise.all(users.map((u) => u.run()));
  clearInterval(ticker);

  const checks = await Promise.all(users.map((u) => u.verify()));
  const bad = checks.filter((c) => c.problem);
  const exact = checks.filter((c) => !c.problem && c.counter === c.lastAck).length;
  const rows = summary();
  console.log("\nphase                     secs  requests  failures   p50 ms   p99 ms   max ms  pods  fail window s  errors");
  for (const r of rows) {
    console.log(`${r.phase.padEnd(24)} ${String(r.seconds).padStart(5)} ${String(r.requests).padStart(9)} ${String(r.failures).padStart(9)} ${String(r.p50_ms).padStart(8)} ${String(r.p99_ms).padStart(8)} ${String(r.max_ms).padStart(8)} ${String(r.pods).padStart(5)}  ${String(r.fail_window_s).padStart(13)}  ${JSON.stringify(r.errors)}`);
  }
  for (const r of rows) for (const m of r.messages) console.log(`  ${r.phase}: ${m}`);
  const total = rows.reduce((a, r) => ({ requests: a.requests + r.requests, failures: a.failures + r.failures }), { requests: 0, failures: 0 });
  const acked = users.reduce((a, u) => a + u.acks, 0);
  console.log(`\ntotal: ${total.requests} requests, ${total.failures} failures, ${acked} acknowledged increments`);
  console.log(`final read: ${checks.length - bad.length}/${checks.length} users logged in with a consistent counter (${exact} exactly the last acknowledged value, ${checks.length - bad.length - exact} also counted an unacknowledged increment)`);
  for (const b of bad.slice(0, 10)) console.log(`  BAD ${b.user}: ${b.problem}`);
  console.log(`violations during the run: ${violations.length}`);
  for (const v of violations.slice(0, 10)) console.log(`  ${v.kind} ${v.user} in ${v.phase}: ${v.detail}`);
  const cookieKeys = [...new Set(checks.map((c) => c.cookieKey).filter((k) => k !== null))].sort((a, b) => a - b);
  if (cookieKeys.length) console.log(`cookie keys of the users' last cookies: ${cookieKeys.join(", ")}`);
  const result = { users: USERS, phases: rows, total, acknowledged: acked, final_ok: checks.length - bad.length, final_exact: exact, final_bad: bad, violations, cookie_keys: cookieKeys, failed_requests: failedRequests };
  if (REPORT_JSON) writeFileSync(REPORT_JSON, JSON.stringify(result, null, 2));
  const ok = bad.length === 0 && violations.length === 0;
  console.log(`loadgen: ${ok ? "PASS" : "FAIL"}`);
  process.exit(ok ? 0 : 1);
}

main().catch((err) => {
  console.error(`loadgen: ${err.stack ?? err}`);
  process.exit(2);
});
