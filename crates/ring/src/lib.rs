//! Partition placement and migration planning.
//!
//! Pure: no I/O, no clocks, no Kubernetes or network types. The operator (the only
//! writer of ring configuration) and the test harness call it; store nodes only
//! consume its output.
