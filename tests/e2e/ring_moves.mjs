// Partition movement of one ring change, read from two states of the ring ConfigMap
// (`<cluster>-ring`, key ring.json) that the end-to-end run saved before and after a step:
//
//   node tests/e2e/ring_moves.mjs BEFORE.json AFTER.json [EPSILON]
//
// prints one JSON line: moved (replica slots of AFTER that BEFORE did not hold: the copies a
// learner had to receive), minimum (the lower bound of crates/ring's `minimum_moves` for
// the same change), slots, the ratio, and the epochs. EPSILON is the operator's bounded-load
// slack (crates/operator/src/ring_driver/decide.rs EPSILON, 0.25); the bound depends on it.
// Exit status 0 when moved <= (1+EPSILON) x minimum, 1 when not, 2 on unreadable input.
import { readFileSync } from "node:fs";

// crates/ring/src/assignment.rs load_cap: ceil((1+eps) * items / nodes), never below the
// balanced share ceil(items / nodes).
function loadCap(items, nodes, eps) {
  if (nodes === 0) return items;
  const balanced = Math.ceil(items / nodes);
  const e = Number.isFinite(eps) && eps > 0 ? eps : 0;
  return Math.max(Math.ceil(((1 + e) * items) / nodes), balanced);
}

// crates/ring/src/plan.rs minimum_moves, for the replica sets `from` moving onto the member
// set `toMembers` with replication factor rf: the largest of (a) the slots minus what the
// surviving nodes can keep, (b) the slots minus what the partitions can keep, (c) the sum of
// the floor-share deficits. Any placement with loads in [floor, cap] copies at least this.
export function minimumMoves(from, toMembers, rf, eps) {
  const members = new Set(toMembers);
  const n = members.size;
  if (n === 0 || from.length === 0) return 0;
  const replicas = Math.min(rf, n);
  const slots = from.length * replicas;
  const floorShare = Math.floor(slots / n);
  const replicaCap = loadCap(slots, n, eps);
  const oldLoad = new Map();
  let keepableByPartition = 0;
  for (const set of from) {
    const seen = new Set();
    for (const node of set) {
      if (members.has(node) && !seen.has(node)) {
        seen.add(node);
        oldLoad.set(node, (oldLoad.get(node) ?? 0) + 1);
      }
    }
    keepableByPartition += Math.min(seen.size, replicas);
  }
  let keepableByNode = 0;
  for (const l of oldLoad.values()) keepableByNode += Math.min(l, replicaCap);
  const keepable = Math.min(keepableByNode, keepableByPartition, slots);
  let deficit = 0;
  for (const id of members) deficit += Math.max(0, floorShare - (oldLoad.get(id) ?? 0));
  return Math.max(slots - keepable, deficit);
}

// Replica slots of `to` that `from` did not hold (crates/ring plan's replicas_moved).
export function moved(from, to) {
  let n = 0;
  to.forEach((set, p) => {
    const before = new Set(from[p] ?? []);
    for (const node of set) if (!before.has(node)) n += 1;
  });
  return n;
}

function main() {
  const [beforePath, afterPath, epsArg] = process.argv.slice(2);
  const eps = Number(epsArg ?? 0.25);
  let before, after;
  try {
    before = JSON.parse(readFileSync(beforePath, "utf8"));
    after = JSON.parse(readFileSync(afterPath, "utf8"));
  } catch (err) {
    console.log(JSON.stringify({ error: `unreadable ring state: ${err.message}` }));
    process.exit(2);
  }
  const toMembers = [...new Set(after.replicas.flat())].sort();
  const m = moved(before.replicas, after.replicas);
  const min = minimumMoves(before.replicas, toMembers, after.replicationFactor, eps);
  const slots = after.replicas.reduce((a, s) => a + s.length, 0);
  const bound = (1 + eps) * min;
  const out = {
    from: { epoch: before.epoch, members: [...new Set(before.replicas.flat())].sort().length, rf: before.replicationFactor },
    to: { epoch: after.epoch, members: toMembers.length, rf: after.replicationFactor },
    moved: m,
    minimum: min,
    slots,
    moved_fraction: slots ? Math.round((m / slots) * 1000) / 1000 : 0,
    ratio: min ? Math.round((m / min) * 1000) / 1000 : m === 0 ? 1 : null,
    bound: Math.floor(bound),
    within: m <= bound,
  };
  console.log(JSON.stringify(out));
  process.exit(out.within ? 0 : 1);
}

if (import.meta.url === `file://${process.argv[1]}`) main();
