// Keys that are not sessions, for the end-to-end test's resizes: "load N" writes
// e2e:key:0..N-1 (no TTL, a 200-byte value naming the key), "check N" reads them all back
// and fails on any that is missing or changed. Run in a frontend pod with node -e (this
// file's text), through the demo's own Redis client and the store address and password the
// operator gave the pod; prints one line of JSON.
const { createRequire } = require("node:module");
const { createClient } = createRequire("/app/server.mjs")("redis");

const [mode, count] = [process.argv[1], Number(process.argv[2])];
const BATCH = 500;
const value = (i) => `e2e:key:${i}:`.padEnd(200, "x");

async function main() {
  if (!["load", "check"].includes(mode) || !(count > 0)) throw new Error("usage: load|check N");
  const auth = process.env.REDIS_PASSWORD ? `:${encodeURIComponent(process.env.REDIS_PASSWORD)}@` : "";
  const client = createClient({ url: `redis://${auth}${process.env.SESSIONPLANE_STORE_ADDR}/0` });
  client.on("error", () => {});
  await client.connect();
  const t0 = Date.now();
  const bad = [];
  for (let i = 0; i < count; i += BATCH) {
    const ids = Array.from({ length: Math.min(BATCH, count - i) }, (_, j) => i + j);
    if (mode === "load") {
      await Promise.all(ids.map((k) => client.set(`e2e:key:${k}`, value(k))));
    } else {
      const got = await client.mGet(ids.map((k) => `e2e:key:${k}`));
      got.forEach((v, j) => {
        if (v !== value(ids[j])) bad.push(ids[j]);
      });
    }
  }
  await client.quit();
  console.log(JSON.stringify({ mode, count, bad: bad.length, first_bad: bad.slice(0, 5), ms: Date.now() - t0 }));
  if (bad.length) process.exitCode = 1;
}

main().catch((err) => {
  console.log(JSON.stringify({ mode, count, error: err.message }));
  process.exitCode = 1;
});
