//! Partition placement and migration planning.
//!
//! Pure: no I/O, no clocks, no Kubernetes or network types. The operator (the only
//! writer of ring configuration) and the test harness call it; store nodes only
//! consume its output. docs/ring.md describes the algorithm and its guarantees.
//!
//! - [`partition_of`]: key → partition (xxHash64 of the Redis hash tag, stable forever).
//! - [`place`]: members (+ previous assignment) → replica set per partition, with
//!   bounded loads, zone spreading and minimal movement.
//! - [`plan`]: two assignments → the per-partition moves, in the safe order ([`Phase`]).
//! - [`minimum_moves`]: the lower bound the movement of `place` is measured against.
//! - [`failover`]: drop dead nodes, promote only caught-up replicas.

mod assignment;
mod failover;
mod hash;
mod place;
mod plan;

pub use assignment::{load_cap, Assignment, Member, NodeId};
pub use failover::{failover, FailoverOutcome, Promotion};
pub use hash::{hash_tag, partition_of, xxh64};
pub use place::{place, Limits, PlacementError};
pub use plan::{minimum_moves, plan, MigrationPlan, PartitionMove, Phase};
