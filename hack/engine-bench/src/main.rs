//! redb 4 vs fjall 3 as a durable write log (group commits of 500 puts,
//! non-durable commits, durable flush once per second of wall time).
//!
//! Run:  cd hack/engine-bench && cargo run --release -- [quick]   (docs/benchmarks.md)
//! Data goes under $ENGINE_BENCH_DATA (default: the temp dir), deleted after each run.
//!
//! CPU time = getrusage(RUSAGE_SELF) user+sys, i.e. all threads of the process
//! (including fjall's flush/compaction workers).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PARTITIONS: u32 = 64;
const BATCH: usize = 500;
/// Where each run's database lives; $ENGINE_BENCH_DATA, else the temp dir.
fn data_root() -> PathBuf {
    std::env::var_os("ENGINE_BENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("engine-bench"))
}

// ---------------------------------------------------------------- helpers

fn cpu_now() -> Duration {
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        let us = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000 + tv.tv_usec as u64;
        Duration::from_micros(us(ru.ru_utime) + us(ru.ru_stime))
    }
}

fn threads_now() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Threads:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|x| x.parse().unwrap_or(0)))
        })
        .unwrap_or(0)
}

#[derive(Clone, Copy, Default)]
struct Meas {
    wall: Duration,
    cpu: Duration,
}

struct Stopwatch {
    w: Instant,
    c: Duration,
}
impl Stopwatch {
    fn start() -> Self {
        Self {
            w: Instant::now(),
            c: cpu_now(),
        }
    }
    fn stop(&self) -> Meas {
        Meas {
            wall: self.w.elapsed(),
            cpu: cpu_now() - self.c,
        }
    }
}

/// (apparent bytes, allocated bytes)
fn dir_size(p: &Path) -> (u64, u64) {
    let mut a = 0;
    let mut b = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let md = match e.metadata() {
                Ok(m) => m,
                Err(_) => continue,
            };
            if md.is_dir() {
                let (x, y) = dir_size(&e.path());
                a += x;
                b += y;
            } else {
                a += md.len();
                b += md.blocks() * 512;
            }
        }
    }
    (a, b)
}

/// allocated bytes of fjall journal files (*.jnl; they are preallocated sparse to 64 MiB)
fn jnl_alloc(p: &Path) -> u64 {
    let mut b = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                b += jnl_alloc(&path);
            } else if path.extension().is_some_and(|x| x == "jnl") {
                b += e.metadata().map(|m| m.blocks() * 512).unwrap_or(0);
            }
        }
    }
    b
}

/// Evict this DB's files from the page cache (targeted; does not touch other processes' cache).
fn evict_cache(p: &Path) {
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                evict_cache(&path);
            } else if let Ok(f) = std::fs::File::open(&path) {
                use std::os::fd::AsRawFd;
                unsafe {
                    libc::fdatasync(f.as_raw_fd());
                    libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
                }
            }
        }
    }
}

/// xorshift64*
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545F4914F6CDD1D)
    }
}

// ---------------------------------------------------------------- workload

struct Workload {
    /// full key = partition u32 BE ++ "key:%012d"
    keys: Vec<[u8; 20]>,
    /// indexes into keys, one per put
    seq: Vec<u32>,
    /// random bytes, values are slices of it
    noise: Vec<u8>,
    vsize: usize,
}

impl Workload {
    fn new(keyspace: usize, puts: usize, vsize: usize, seed: u64) -> Self {
        let mut rng = Rng(seed | 1);
        let mut keys = Vec::with_capacity(keyspace);
        for _ in 0..keyspace {
            // "random distinct keys": random key number in 0..10^12, partition by hash
            let n = rng.next() % 1_000_000_000_000;
            let part = (rng.next() % PARTITIONS as u64) as u32;
            let mut k = [0u8; 20];
            k[..4].copy_from_slice(&part.to_be_bytes());
            k[4..].copy_from_slice(format!("key:{n:012}").as_bytes());
            keys.push(k);
        }
        keys.sort();
        keys.dedup();
        let seq = (0..puts)
            .map(|_| (rng.next() % keys.len() as u64) as u32)
            .collect();
        let noise = (0..(1 << 20) / 8)
            .flat_map(|_| rng.next().to_le_bytes())
            .collect();
        Self {
            keys,
            seq,
            noise,
            vsize,
        }
    }
    #[inline]
    fn value(&self, i: usize) -> &[u8] {
        let off = (i.wrapping_mul(7919)) % (self.noise.len() - self.vsize);
        &self.noise[off..off + self.vsize]
    }
}

// ---------------------------------------------------------------- engines

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Redb1,     // one table, key = part BE ++ key
    Redb64,    // one table per partition, key = client key
    Fjall1,    // one keyspace, key = part BE ++ key
    Fjall64,   // one keyspace per partition, key = client key
    Fjall1W1,  // as Fjall1 but worker_threads(1)
    Fjall64W1, // as Fjall64 but worker_threads(1)
}
impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Redb1 => "redb-1table",
            Kind::Redb64 => "redb-64tables",
            Kind::Fjall1 => "fjall-1ks",
            Kind::Fjall64 => "fjall-64ks",
            Kind::Fjall1W1 => "fjall-1ks-w1",
            Kind::Fjall64W1 => "fjall-64ks-w1",
        }
    }
    fn parse(s: &str) -> Kind {
        match s {
            "redb-1table" => Kind::Redb1,
            "redb-64tables" => Kind::Redb64,
            "fjall-1ks" => Kind::Fjall1,
            "fjall-64ks" => Kind::Fjall64,
            "fjall-1ks-w1" => Kind::Fjall1W1,
            "fjall-64ks-w1" => Kind::Fjall64W1,
            _ => panic!("unknown engine {s}"),
        }
    }
}

type RTable = redb::TableDefinition<'static, &'static [u8], &'static [u8]>;
const REDB_ONE: RTable = redb::TableDefinition::new("data");
fn tdef(n: &str) -> redb::TableDefinition<'_, &'static [u8], &'static [u8]> {
    redb::TableDefinition::new(n)
}
fn redb_part_names() -> Vec<String> {
    (0..PARTITIONS).map(|p| format!("p{p}")).collect()
}

enum Db {
    Redb {
        db: redb::Database,
        kind: Kind,
        names: Vec<String>,
    },
    Fjall {
        db: fjall::Database,
        kss: Vec<fjall::Keyspace>,
    },
}

fn db_file(dir: &Path) -> PathBuf {
    dir.join("db.redb")
}

impl Db {
    fn open(kind: Kind, dir: &Path) -> Db {
        match kind {
            Kind::Redb1 | Kind::Redb64 => {
                std::fs::create_dir_all(dir).unwrap();
                // Builder::create opens an existing file or creates a new one.
                let db = redb::Database::builder().create(db_file(dir)).unwrap();
                Db::Redb {
                    db,
                    kind,
                    names: redb_part_names(),
                }
            }
            Kind::Fjall1 | Kind::Fjall64 | Kind::Fjall1W1 | Kind::Fjall64W1 => {
                // default worker_threads = min(#cores, 4) = 2 on this machine
                let mut b = fjall::Database::builder(dir);
                if matches!(kind, Kind::Fjall1W1 | Kind::Fjall64W1) {
                    b = b.worker_threads(1);
                }
                let db = b.open().unwrap();
                // FJALL_MEMTABLE_MB: optional max_memtable_size per keyspace (default 64 MiB)
                let opts = || {
                    let o = fjall::KeyspaceCreateOptions::default();
                    match std::env::var("FJALL_MEMTABLE_MB") {
                        Ok(mb) => o.max_memtable_size(mb.parse::<u64>().unwrap() << 20),
                        Err(_) => o,
                    }
                };
                let kss = if matches!(kind, Kind::Fjall1 | Kind::Fjall1W1) {
                    vec![db.keyspace("data", opts).unwrap()]
                } else {
                    (0..PARTITIONS)
                        .map(|p| db.keyspace(&format!("p{p}"), opts).unwrap())
                        .collect()
                };
                Db::Fjall { db, kss }
            }
        }
    }

    fn write_batch(&mut self, w: &Workload, range: std::ops::Range<usize>, durable: bool) {
        match self {
            Db::Redb { db, kind, names } => {
                let mut tx = db.begin_write().unwrap();
                tx.set_durability(if durable {
                    redb::Durability::Immediate
                } else {
                    redb::Durability::None
                })
                .unwrap();
                if *kind == Kind::Redb1 {
                    let mut t = tx.open_table(REDB_ONE).unwrap();
                    for i in range {
                        let k = &w.keys[w.seq[i] as usize];
                        t.insert(&k[..], w.value(i)).unwrap();
                    }
                } else {
                    let mut tables: Vec<Option<redb::Table<&[u8], &[u8]>>> =
                        (0..PARTITIONS).map(|_| None).collect();
                    for i in range {
                        let k = &w.keys[w.seq[i] as usize];
                        let p = u32::from_be_bytes(k[..4].try_into().unwrap()) as usize;
                        let t = tables[p]
                            .get_or_insert_with(|| tx.open_table(tdef(&names[p])).unwrap());
                        t.insert(&k[4..], w.value(i)).unwrap();
                    }
                    drop(tables);
                }
                tx.commit().unwrap();
            }
            Db::Fjall { db, kss } => {
                // db.batch() => PersistMode::Buffer on commit (write(2) to the journal,
                // survives a process crash, not an OS crash) unless manual_journal_persist.
                let mut b = db.batch();
                let one = kss.len() == 1;
                for i in range {
                    let k = &w.keys[w.seq[i] as usize];
                    if one {
                        b.insert(&kss[0], &k[..], w.value(i));
                    } else {
                        let p = u32::from_be_bytes(k[..4].try_into().unwrap()) as usize;
                        b.insert(&kss[p], &k[4..], w.value(i));
                    }
                }
                b.commit().unwrap();
                if durable {
                    db.persist(fjall::PersistMode::SyncAll).unwrap();
                }
            }
        }
    }

    /// A durable flush with no new data.
    fn durable_flush(&mut self) {
        match self {
            Db::Redb { db, .. } => {
                let mut tx = db.begin_write().unwrap();
                tx.set_durability(redb::Durability::Immediate).unwrap();
                tx.commit().unwrap();
            }
            Db::Fjall { db, .. } => db.persist(fjall::PersistMode::SyncAll).unwrap(),
        }
    }

    /// fjall: force memtables to disk, then wait until flushes/compactions are done
    /// and the process is CPU-idle. redb: only the idle wait (should be ~0).
    fn settle(&mut self) {
        if let Db::Fjall { kss, .. } = self {
            for ks in kss.iter() {
                ks.rotate_memtable().unwrap();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut quiet = 0;
        loop {
            let c0 = cpu_now();
            std::thread::sleep(Duration::from_millis(100));
            let dc = cpu_now() - c0;
            let busy = match self {
                Db::Fjall { db, kss } => {
                    db.outstanding_flushes() > 0
                        || db.active_compactions() > 0
                        || kss.iter().any(|k| k.sealed_memtable_count() > 0)
                }
                _ => false,
            };
            if !busy && dc < Duration::from_millis(2) {
                quiet += 1;
                if quiet >= 3 {
                    break;
                }
            } else {
                quiet = 0;
            }
            if Instant::now() > deadline {
                eprintln!("settle: deadline hit");
                break;
            }
        }
    }

    /// Scan everything; returns (#keys, total value bytes).
    fn scan(&self) -> (usize, usize) {
        let mut n = 0;
        let mut bytes = 0;
        match self {
            Db::Redb { db, kind, names } => {
                use redb::{ReadableDatabase, ReadableTable};
                let rx = db.begin_read().unwrap();
                let tables: Vec<redb::TableDefinition<&[u8], &[u8]>> = if *kind == Kind::Redb1 {
                    vec![REDB_ONE]
                } else {
                    names.iter().map(|n| tdef(n)).collect()
                };
                for td in tables {
                    let t = match rx.open_table(td) {
                        Ok(t) => t,
                        Err(redb::TableError::TableDoesNotExist(_)) => continue,
                        Err(e) => panic!("{e}"),
                    };
                    for kv in t.iter().unwrap() {
                        let (k, v) = kv.unwrap();
                        n += 1;
                        bytes += v.value().len() + k.value().len() * 0;
                    }
                }
            }
            Db::Fjall { kss, .. } => {
                for ks in kss {
                    for kv in ks.iter() {
                        let (_k, v) = kv.into_inner().unwrap();
                        n += 1;
                        bytes += v.len();
                    }
                }
            }
        }
        (n, bytes)
    }

    /// Delete all keys of partition `p` and make it durable. Returns #keys removed.
    fn drop_partition(&mut self, p: u32) -> usize {
        match self {
            Db::Redb { db, kind, names } => {
                let mut tx = db.begin_write().unwrap();
                tx.set_durability(redb::Durability::Immediate).unwrap();
                let mut removed = 0usize;
                if *kind == Kind::Redb1 {
                    let mut t = tx.open_table(REDB_ONE).unwrap();
                    let lo = p.to_be_bytes();
                    let hi = (p + 1).to_be_bytes();
                    t.retain_in::<&[u8], _>(&lo[..]..&hi[..], |_, _| {
                        removed += 1;
                        false
                    })
                    .unwrap();
                } else {
                    {
                        use redb::ReadableTableMetadata;
                        let t = tx.open_table(tdef(&names[p as usize])).unwrap();
                        removed = t.len().unwrap() as usize;
                    }
                    tx.delete_table(tdef(&names[p as usize])).unwrap();
                }
                tx.commit().unwrap();
                removed
            }
            Db::Fjall { db, kss } => {
                if kss.len() == 1 {
                    // no range delete in fjall 3: point tombstones for every key in the prefix
                    let ks = &kss[0];
                    let mut b = db.batch();
                    let mut removed = 0;
                    for kv in ks.prefix(p.to_be_bytes()) {
                        let k = kv.key().unwrap();
                        b.remove(ks, k);
                        removed += 1;
                    }
                    b.commit().unwrap();
                    db.persist(fjall::PersistMode::SyncAll).unwrap();
                    removed
                } else {
                    let ks = kss.remove(p as usize);
                    let removed = ks.approximate_len();
                    db.delete_keyspace(ks).unwrap();
                    db.persist(fjall::PersistMode::SyncAll).unwrap();
                    removed
                }
            }
        }
    }
}

// ---------------------------------------------------------------- one run

struct RunResult {
    put: Meas,
    settle: Meas,
    close: Meas,
    disk_apparent: u64,
    disk_alloc: u64,
    durable_flushes: usize,
    open_cold: Meas,
    scan_cold: Meas,
    scanned: usize,
    open_warm: Meas,
    scan_warm: Meas,
    drop_part: Meas,
    drop_removed: usize,
    drop_close: Meas,
    /// fjall: journal bytes on disk after the put phase (before forced flush)
    journal_mb: f64,
}

fn do_puts(db: &mut Db, w: &Workload) -> usize {
    let mut last_flush = Instant::now();
    let mut flushes = 0;
    let mut last_durable = false;
    let n = w.seq.len();
    let mut i = 0;
    while i < n {
        let end = (i + BATCH).min(n);
        let durable = last_flush.elapsed() >= Duration::from_secs(1);
        db.write_batch(w, i..end, durable);
        if durable {
            last_flush = Instant::now();
            flushes += 1;
        }
        last_durable = durable;
        i = end;
    }
    if !last_durable {
        db.durable_flush();
        flushes += 1;
    }
    flushes
}

fn run_one(kind: Kind, w: &Workload, tag: &str) -> RunResult {
    let dir = data_root().join(format!("{}-{tag}", kind.name()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(data_root()).unwrap();
    let threads_before = threads_now();

    let mut db = Db::open(kind, &dir);

    let sw = Stopwatch::start();
    let durable_flushes = do_puts(&mut db, w);
    let put = sw.stop();
    let journal_mb = jnl_alloc(&dir) as f64 / 1e6;

    let sw = Stopwatch::start();
    db.settle();
    let settle = sw.stop();

    let (disk_apparent, disk_alloc) = dir_size(&dir);
    if std::env::var("LIST_FILES").is_ok() {
        let _ = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "cd {} && find . -type f -exec ls -ls {{}} + | sort -k6 -n | tail -15",
                dir.display()
            ))
            .status();
    }

    let sw = Stopwatch::start();
    drop(db);
    let close = sw.stop();
    assert_eq!(
        threads_now(),
        threads_before,
        "background threads still alive"
    );

    // recovery, cold cache (this DB's files evicted from page cache)
    evict_cache(&dir);
    let sw = Stopwatch::start();
    let db = Db::open(kind, &dir);
    let open_cold = sw.stop();
    let sw = Stopwatch::start();
    let (scanned, _) = db.scan();
    let scan_cold = sw.stop();
    drop(db);

    // recovery, warm cache
    let sw = Stopwatch::start();
    let mut db = Db::open(kind, &dir);
    let open_warm = sw.stop();
    let sw = Stopwatch::start();
    let (scanned2, _) = db.scan();
    let scan_warm = sw.stop();
    assert_eq!(scanned, scanned2);

    // partition drop (partition of the first key so keyspace=1 runs remove something)
    let p = u32::from_be_bytes(w.keys[0][..4].try_into().unwrap());
    let sw = Stopwatch::start();
    let drop_removed = db.drop_partition(p);
    let drop_part = sw.stop();
    let sw = Stopwatch::start();
    drop(db); // fjall deletes the keyspace folder when the last handle goes away
    let drop_close = sw.stop();

    let _ = std::fs::remove_dir_all(&dir);
    RunResult {
        put,
        settle,
        close,
        disk_apparent,
        disk_alloc,
        durable_flushes,
        open_cold,
        scan_cold,
        scanned,
        open_warm,
        scan_warm,
        drop_part,
        drop_removed,
        drop_close,
        journal_mb,
    }
}

// ---------------------------------------------------------------- crash recovery

/// Child: do the puts, durable flush, then _exit without any destructor (simulated crash).
fn crash_child(kind: Kind, dir: &Path, keyspace: usize, puts: usize, vsize: usize) -> ! {
    let w = Workload::new(keyspace, puts, vsize, 42);
    let mut db = Db::open(kind, dir);
    do_puts(&mut db, &w);
    unsafe { libc::_exit(0) }
}

fn crash_recovery(
    kind: Kind,
    keyspace: usize,
    puts: usize,
    vsize: usize,
) -> (Meas, Meas, usize, u64) {
    let dir = data_root().join(format!("{}-crash", kind.name()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(data_root()).unwrap();
    let st = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "crash-child",
            kind.name(),
            dir.to_str().unwrap(),
            &keyspace.to_string(),
            &puts.to_string(),
            &vsize.to_string(),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let (_, alloc) = dir_size(&dir);
    evict_cache(&dir);
    let sw = Stopwatch::start();
    let db = Db::open(kind, &dir);
    let open = sw.stop();
    let sw = Stopwatch::start();
    let (n, _) = db.scan();
    let scan = sw.stop();
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
    (open, scan, n, alloc)
}

// ---------------------------------------------------------------- main

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(|s| s.as_str()) == Some("crash-child") {
        crash_child(
            Kind::parse(&args[2]),
            Path::new(&args[3]),
            args[4].parse().unwrap(),
            args[5].parse().unwrap(),
            args[6].parse().unwrap(),
        );
    }
    let quick = args.get(1).map(|s| s.as_str()) == Some("quick");
    let puts: usize = if quick { 100_000 } else { 1_000_000 };
    let mut reps = if quick { 1 } else { 3 };
    let engines: Vec<Kind> = std::env::var("ENGINES")
        .map(|s| s.split(',').map(Kind::parse).collect())
        .unwrap_or_else(|_| {
            vec![
                Kind::Redb1,
                Kind::Fjall1,
                Kind::Fjall1W1,
                Kind::Redb64,
                Kind::Fjall64,
                Kind::Fjall64W1,
            ]
        });
    // CONFIGS="100000:32,1:256" to restrict (keyspace:value_size)
    let configs: Vec<(usize, usize)> = std::env::var("CONFIGS")
        .map(|s| {
            s.split(',')
                .map(|c| {
                    let (a, b) = c.split_once(':').unwrap();
                    (a.parse().unwrap(), b.parse().unwrap())
                })
                .collect()
        })
        .unwrap_or_else(|_| vec![(100_000, 32), (1, 32), (100_000, 256), (1, 256)]);
    if let Ok(r) = std::env::var("REPS") {
        reps = r.parse().unwrap();
    }

    println!(
        "# puts={puts} batch={BATCH} partitions={PARTITIONS} reps={reps} redb=4.6.0 fjall=3.1.13"
    );
    println!(
        "RUN engine keyspace vsize rep | put_wall_us/put put_cpu_us/put | settle_wall_ms settle_cpu_ms | total_cpu_us/put | close_ms | disk_alloc_MB disk_apparent_MB | flushes | open_cold_ms scan_cold_ms (cpu ms) n | open_warm_ms scan_warm_ms | drop_part_ms drop_cpu_ms removed drop_close_ms | journal_MB"
    );
    let mut all: Vec<(Kind, usize, usize, RunResult)> = Vec::new();
    for rep in 0..reps {
        for &(ks, vs) in &configs {
            let w = Workload::new(ks, puts, vs, 1000 + rep as u64);
            for &kind in &engines {
                let r = run_one(kind, &w, &format!("{ks}-{vs}-{rep}"));
                let pp = |d: Duration| d.as_secs_f64() * 1e6 / puts as f64;
                let ms = |d: Duration| d.as_secs_f64() * 1e3;
                println!(
                    "RUN {:<13} {:>6} {:>3} {} | {:6.2} {:6.2} | {:7.1} {:7.1} | {:6.2} | {:6.1} | {:7.1} {:7.1} | {:3} | {:7.1} {:7.1} ({:7.1}) {:6} | {:7.1} {:7.1} | {:7.1} {:7.1} {:5} {:6.1} | {:6.1}",
                    kind.name(), ks, vs, rep,
                    pp(r.put.wall), pp(r.put.cpu),
                    ms(r.settle.wall), ms(r.settle.cpu),
                    pp(r.put.cpu + r.settle.cpu + r.close.cpu),
                    ms(r.close.wall),
                    r.disk_alloc as f64 / 1e6, r.disk_apparent as f64 / 1e6,
                    r.durable_flushes,
                    ms(r.open_cold.wall), ms(r.scan_cold.wall), ms(r.open_cold.cpu + r.scan_cold.cpu), r.scanned,
                    ms(r.open_warm.wall), ms(r.scan_warm.wall),
                    ms(r.drop_part.wall), ms(r.drop_part.cpu), r.drop_removed, ms(r.drop_close.wall),
                    r.journal_mb,
                );
                all.push((kind, ks, vs, r));
            }
        }
    }

    println!("\n## medians over {reps} reps (us per put; total CPU = puts + forced flush/compaction settle + close)");
    println!("| engine | keys | value B | wall us/put | CPU us/put (puts only) | CPU us/put (incl. bg settle) | disk alloc MB | open+scan cold ms | open+scan warm ms | partition drop ms (wall/cpu) |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &(ks, vs) in &configs {
        for &kind in &engines {
            let rs: Vec<&RunResult> = all
                .iter()
                .filter(|(k, a, b, _)| *k == kind && *a == ks && *b == vs)
                .map(|x| &x.3)
                .collect();
            let m = |f: &dyn Fn(&RunResult) -> f64| median(rs.iter().map(|r| f(r)).collect());
            let pp = |d: Duration| d.as_secs_f64() * 1e6 / puts as f64;
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            println!(
                "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.1} | {:.0} | {:.0} | {:.1} / {:.1} |",
                kind.name(),
                ks,
                vs,
                m(&|r| pp(r.put.wall)),
                m(&|r| pp(r.put.cpu)),
                m(&|r| pp(r.put.cpu + r.settle.cpu + r.close.cpu)),
                m(&|r| r.disk_alloc as f64 / 1e6),
                m(&|r| ms(r.open_cold.wall + r.scan_cold.wall)),
                m(&|r| ms(r.open_warm.wall + r.scan_warm.wall)),
                m(&|r| ms(r.drop_part.wall)),
                m(&|r| ms(r.drop_part.cpu)),
            );
        }
    }

    if std::env::var("NO_CRASH").is_err() {
        println!("\n## crash recovery: child does {puts} puts over 100k keys, durable flush, then _exit(0) (no clean close)");
        println!(
            "| engine | value B | disk alloc MB | open ms (wall/cpu) | scan ms (wall/cpu) | keys |"
        );
        println!("|---|---|---|---|---|---|");
        for vs in [32, 256] {
            for &kind in &engines {
                let (o, s, n, alloc) = crash_recovery(kind, 100_000, puts, vs);
                println!(
                    "| {} | {} | {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {} |",
                    kind.name(),
                    vs,
                    alloc as f64 / 1e6,
                    o.wall.as_secs_f64() * 1e3,
                    o.cpu.as_secs_f64() * 1e3,
                    s.wall.as_secs_f64() * 1e3,
                    s.cpu.as_secs_f64() * 1e3,
                    n
                );
            }
        }
    }
}
