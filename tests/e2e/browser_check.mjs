// A real browser through the demo: headless Chromium, driven over the DevTools protocol,
// opens the page, logs in through the form, presses +1 three times, reloads, and checks the
// page says "Logged in as <user>" with counter 3; it saves screenshots of the login page
// and of the counter page. Needs `chromium` and Node's WebSocket
// (run with: node --experimental-websocket browser_check.mjs URL [SCREENSHOT_DIR]).
// With BROWSER_CLICK_UNTIL=<file> it keeps clicking +1 after the first three, checking the
// page after every click (still logged in, counter one more), until that file exists: the
// caller changes the cluster meanwhile (hack/e2e/routing.sh resizes the store and scales the
// frontends). It prints the frontend pods the page named, and the screenshot of the counter
// page is taken after the last reload.
// Prints "BROWSER CHECK OK" and exits 0 when the page behaved.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const url = process.argv[2] ?? "http://127.0.0.1:8080";
const shots = process.argv[3] ?? tmpdir();
const user = `browser-${process.pid}`;
const clickUntil = process.env.BROWSER_CLICK_UNTIL;
// Bounds the clicking when the caller never says stop.
const MAX_CLICKS = 2000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function devtoolsPage(port) {
  for (let i = 0; i < 100; i++) {
    try {
      const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
      const page = targets.find((t) => t.type === "page");
      if (page) return page.webSocketDebuggerUrl;
    } catch {
      // Chromium not listening yet.
    }
    await sleep(100);
  }
  throw new Error("chromium's DevTools endpoint did not come up within 10 s");
}

function session(wsUrl) {
  const ws = new WebSocket(wsUrl);
  let next = 1;
  const pending = new Map();
  const waiters = [];
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.id && pending.has(msg.id)) {
      const { resolve, reject } = pending.get(msg.id);
      pending.delete(msg.id);
      msg.error ? reject(new Error(msg.error.message)) : resolve(msg.result);
    } else if (msg.method) {
      for (const w of waiters.splice(0)) if (w.method === msg.method) w.resolve(); else waiters.push(w);
    }
  };
  const opened = new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error("DevTools websocket failed"));
  });
  const send = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const id = next++;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params }));
    });
  const event = (method, ms = 10000) =>
    Promise.race([
      new Promise((resolve) => waiters.push({ method, resolve })),
      sleep(ms).then(() => { throw new Error(`no ${method} within ${ms} ms`); }),
    ]);
  return { opened, send, event, close: () => ws.close() };
}

async function main() {
  const port = 9300 + (process.pid % 500);
  const profile = mkdtempSync(path.join(tmpdir(), "sp-chromium-"));
  const chrome = spawn("chromium", ["--headless", "--no-sandbox", "--disable-gpu", `--remote-debugging-port=${port}`,
    `--user-data-dir=${profile}`, "--window-size=800,520", "about:blank"], { stdio: "ignore" });
  const cdp = session(await devtoolsPage(port));
  try {
    await cdp.opened;
    await cdp.send("Page.enable");
    const text = async () => (await cdp.send("Runtime.evaluate", { expression: "document.body.innerText", returnByValue: true })).result.value;
    const shot = async (name) => {
      const { data } = await cdp.send("Page.captureScreenshot", { format: "png" });
      const file = path.join(shots, name);
      writeFileSync(file, Buffer.from(data, "base64"));
      console.log(`screenshot: ${file}`);
    };
    const act = async (expression) => {
      const loaded = cdp.event("Page.loadEventFired");
      await cdp.send("Runtime.evaluate", { expression });
      await loaded;
    };

    await act(`location.href = ${JSON.stringify(url)}`);
    if (!/Log in/.test(await text())) throw new Error("the first page is not the login page");
    await shot("demo-login.png");
    await act(`document.querySelector('input[name=username]').value = ${JSON.stringify(user)}; document.querySelector('form').submit()`);
    const value = async (id) =>
      (await cdp.send("Runtime.evaluate", { expression: `document.getElementById('${id}')?.textContent`, returnByValue: true })).result.value;
    const click = () => act("document.querySelector('form[action=\"/increment\"]').submit()");
    for (let i = 0; i < 3; i++) await click();
    let want = 3;
    const pods = new Set();
    if (clickUntil) {
      while (!existsSync(clickUntil) && want < MAX_CLICKS) {
        await click();
        want += 1;
        const [body, counter, pod] = [await text(), await value("counter"), await value("pod")];
        if (!body.includes(`Logged in as ${user}`)) throw new Error(`not logged in after click ${want}: ${body.slice(0, 200)}`);
        if (counter !== String(want)) throw new Error(`counter shows ${counter} after click ${want}`);
        pods.add(pod);
        await sleep(200);
      }
    }
    await act("location.reload()");
    const body = await text();
    if (!body.includes(`Logged in as ${user}`)) throw new Error(`not logged in after reload: ${body.slice(0, 200)}`);
    const counter = await value("counter");
    if (counter !== String(want)) throw new Error(`counter shows ${counter}, want ${want}`);
    await shot("demo-counter.png");
    const where = pods.size ? `, answered by ${[...pods].join(" ")}` : "";
    console.log(`BROWSER CHECK OK: logged in as ${user}, counter ${want} after ${want} clicks and a reload${where}`);
  } finally {
    cdp.close();
    chrome.kill("SIGKILL");
    await sleep(200);
    rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(`BROWSER CHECK FAILED: ${err.message}`);
  process.exit(1);
});
