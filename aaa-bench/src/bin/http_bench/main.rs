//! Throughput and p99 latency of a small handler, bare and wrapped, over real HTTP on 127.0.0.1.
//!
//! Run with (server pinned to core 0 by this program, load generator on core 1):
//!
//! ```text
//! cargo build --release -p aaa-bench --bin http-bench
//! taskset -c 1 target/release/http-bench [--seconds 5] [--connections 32] [--rounds 1] [VARIANT...]
//! ```
//!
//! With `--rounds N`, every variant is measured N times, the rounds interleaved (all variants,
//! then all again), and the median round of each variant is reported: on a shared machine the
//! noise then falls on every variant alike. The ratios the targets are about are also computed
//! within each round and reported with their median.
//!
//! With `--keep`, every variant's server is started (and warmed up) once and kept for all rounds,
//! so that rounds can be short (`--seconds 1 --rounds 30`): the two variants of a ratio are then
//! measured seconds apart rather than minutes, and a drift of a shared machine falls on both.
//!
//! Every variant is served by a child process (`http-bench serve VARIANT`, started under
//! `taskset -c 0` with one worker thread), loaded for a warm-up second and then `--seconds`, and
//! reported as requests per second, p50 and p99 latency, and the ratio to the first variant of its
//! framework measured in the same run. A second table gives the server's CPU time per request
//! (from `/proc/PID/task/*/stat`): the serving threads' in user space and in the kernel, and the
//! audit log's sequencer's, which say where a variant's time goes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a benchmark program: fail loudly"
)]

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod apps;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        let variant = args.get(1).expect("serve VARIANT DIR");
        let dir = args.get(2).expect("serve VARIANT DIR");
        apps::serve(variant, dir.into());
        return;
    }
    let mut seconds = 5u64;
    let mut connections = 32usize;
    let mut rounds = 1usize;
    let mut keep = false;
    let mut variants = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => seconds = it.next().unwrap().parse().unwrap(),
            "--connections" => connections = it.next().unwrap().parse().unwrap(),
            "--rounds" => rounds = it.next().unwrap().parse::<usize>().unwrap().max(1),
            "--keep" => keep = true,
            v => variants.push(v.to_owned()),
        }
    }
    if variants.is_empty() {
        variants = apps::VARIANTS.iter().map(|v| (*v).to_owned()).collect();
    }
    let dir = tempfile::tempdir().unwrap();
    let mut results: Vec<Vec<Result>> = variants.iter().map(|_| Vec::new()).collect();
    if keep {
        let mut servers: Vec<Server> = variants
            .iter()
            .map(|variant| Server::start(variant, &dir.path().join(variant), connections))
            .collect();
        for _ in 0..rounds {
            for (server, results) in servers.iter_mut().zip(&mut results) {
                results.push(server.measure(seconds, connections));
            }
        }
    } else {
        for round in 0..rounds {
            for (variant, results) in variants.iter().zip(&mut results) {
                let path = dir.path().join(format!("{variant}-{round}"));
                let mut server = Server::start(variant, &path, connections);
                results.push(server.measure(seconds, connections));
            }
        }
    }
    let paired = paired_ratios(&variants, &results);
    println!(
        "| variant | req/s | p50 µs | p99 µs | ratio to bare | non-200 (all rounds) |\n|---|---:|---:|---:|---:|---:|"
    );
    let mut bare: std::collections::HashMap<String, f64> = Default::default();
    let mut rounds_of = Vec::new();
    let mut cpu_lines = Vec::new();
    for (variant, mut results) in variants.iter().zip(results) {
        let errors: u64 = results.iter().map(|r| r.errors).sum();
        // The median round by throughput.
        results.sort_by(|a, b| a.rps.total_cmp(&b.rps));
        let result = &results[results.len() / 2];
        let framework = variant.split('-').next().unwrap().to_owned();
        let base = *bare.entry(framework).or_insert(result.rps);
        let all: Vec<String> = results.iter().map(|r| format!("{:.0}", r.rps)).collect();
        rounds_of.push(format!("- {variant}: {} req/s", all.join(", ")));
        let c = result.cpu;
        cpu_lines.push(format!(
            "| {variant} | {:.1} | {:.1} | {:.1} | {:.1} |",
            c.user + c.system + c.audit,
            c.user,
            c.system,
            c.audit
        ));
        println!(
            "| {variant} | {:.0} | {} | {} | {:.3} | {} |",
            result.rps,
            result.p50.as_micros(),
            result.p99.as_micros(),
            result.rps / base,
            errors,
        );
    }
    println!(
        "\nServer CPU time per request, in µs (the median round; clock ticks of 10 ms, so a short \
         round reads to a few percent):\n\n\
         | variant | all threads | serving, user | serving, kernel | audit sequencer |\n\
         |---|---:|---:|---:|---:|"
    );
    for line in cpu_lines {
        println!("{line}");
    }
    if rounds > 1 {
        println!("\nEvery round (the table shows the median):\n");
        for line in rounds_of {
            println!("{line}");
        }
        if !paired.is_empty() {
            println!(
                "\nRatios within each round (both variants measured in the same round, so a \
                 drift of the machine between rounds falls on both):\n\n\
                 | ratio | throughput, median | throughput, every round | p99 latency, median |\n\
                 |---|---:|---|---:|"
            );
            for line in paired {
                println!("{line}");
            }
        }
    }
}

/// The ratios the targets are about, computed within each round and summarised by their median.
fn paired_ratios(variants: &[String], results: &[Vec<Result>]) -> Vec<String> {
    const PAIRS: &[(&str, &str)] = &[
        ("aaa", "jwt"),
        ("aaa_cached", "bare"),
        ("aaa", "aaa_unaudited"),
        ("aaa_cached", "aaa_cached_unaudited"),
        ("aaa_unaudited", "jwt"),
        ("jwt_dalek", "jwt"),
        ("aaa", "jwt_dalek"),
    ];
    let find = |name: &str| variants.iter().position(|v| v == name);
    let mut lines = Vec::new();
    for framework in ["axum", "actix"] {
        for (num, den) in PAIRS {
            let (Some(n), Some(d)) = (
                find(&format!("{framework}-{num}")),
                find(&format!("{framework}-{den}")),
            ) else {
                continue;
            };
            let pairs = || results[n].iter().zip(&results[d]);
            let mut ratios: Vec<f64> = pairs().map(|(a, b)| a.rps / b.rps).collect();
            // Latency the other way round: how many times the peer's p99.
            let mut p99: Vec<f64> = pairs()
                .map(|(a, b)| a.p99.as_secs_f64() / b.p99.as_secs_f64())
                .collect();
            let every: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
            ratios.sort_by(f64::total_cmp);
            p99.sort_by(f64::total_cmp);
            lines.push(format!(
                "| {framework}-{num} / {framework}-{den} | {:.3} | {} | {:.2} |",
                ratios[ratios.len() / 2],
                every.join(", "),
                p99[p99.len() / 2],
            ));
        }
    }
    lines
}

struct Result {
    errors: u64,
    rps: f64,
    p50: Duration,
    p99: Duration,
    /// The server's CPU time per answered request, in µs.
    cpu: Cpu,
}

/// CPU time per request of a server, by thread: the threads serving HTTP (the runtime's, or
/// actix's worker), in user space and in the kernel, and the audit log's sequencer
/// (`aaa-audit`).
#[derive(Clone, Copy, Default)]
struct Cpu {
    user: f64,
    system: f64,
    audit: f64,
}

/// Clock ticks (`USER_HZ`, 100 a second on Linux) the threads of process `pid` have run: all but
/// the audit sequencer's (user, system), and the audit sequencer's.
fn ticks_of(pid: u32) -> (u64, u64, u64) {
    let (mut user, mut system, mut audit) = (0, 0, 0);
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0, 0);
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // After the command name (in parentheses, which may hold spaces): state is field 3,
        // utime field 14, stime field 15.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        let (Some(u), Some(s)) = (field(14), field(15)) else {
            continue;
        };
        if stat.contains("(aaa-audit)") {
            audit += u + s;
        } else {
            user += u;
            system += s;
        }
    }
    (user, system, audit)
}

/// A variant's server: a child process pinned to core 0, warmed up.
struct Server {
    variant: String,
    child: std::process::Child,
    addr: SocketAddr,
    request: String,
    runtime: tokio::runtime::Runtime,
}

impl Server {
    fn start(variant: &str, dir: &std::path::Path, connections: usize) -> Server {
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new("taskset")
            .args(["-c", "0"])
            .arg(exe)
            .args(["serve", variant])
            .arg(dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect("taskset (util-linux) is needed");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr: SocketAddr = lines.next().unwrap().unwrap().parse().unwrap();
        let request = lines.next().unwrap().unwrap();
        let request = request.replace("\\r\\n", "\r\n");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(load(
            addr,
            request.as_bytes(),
            Duration::from_secs(1),
            connections,
        ));
        Server {
            variant: variant.to_owned(),
            child,
            addr,
            request,
            runtime,
        }
    }

    fn measure(&mut self, seconds: u64, connections: usize) -> Result {
        let variant = &self.variant;
        // With `HTTP_BENCH_PERF=DIR`, the measured load is profiled with `perf record` (cpu-clock,
        // no call graph unless `HTTP_BENCH_PERF_CALLS=fp|dwarf`) into `DIR/perf-VARIANT.data`,
        // for per-symbol comparisons between variants.
        let perf = std::env::var_os("HTTP_BENCH_PERF").map(|dir| {
            let out = std::path::Path::new(&dir).join(format!("perf-{variant}.data"));
            Command::new("perf")
                .args(["record", "-q", "-e", "cpu-clock", "-F", "2000"])
                .args(
                    std::env::var("HTTP_BENCH_PERF_CALLS")
                        .ok()
                        .map(|g| format!("--call-graph={g}")),
                )
                .arg("-p")
                .arg(self.child.id().to_string())
                .arg("-o")
                .arg(out)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("perf is needed for HTTP_BENCH_PERF")
        });
        let before = ticks_of(self.child.id());
        let (mut latencies, errors) = self.runtime.block_on(load(
            self.addr,
            self.request.as_bytes(),
            Duration::from_secs(seconds),
            connections,
        ));
        let after = ticks_of(self.child.id());
        let per_request = |a: u64, b: u64| {
            (b.saturating_sub(a)) as f64 * 10_000.0 / latencies.len().max(1) as f64
        };
        let cpu = Cpu {
            user: per_request(before.0, after.0),
            system: per_request(before.1, after.1),
            audit: per_request(before.2, after.2),
        };
        if let Some(mut perf) = perf {
            // SIGINT makes perf write its file and exit.
            let _ = Command::new("kill")
                .args(["-INT", &perf.id().to_string()])
                .status();
            perf.wait().unwrap();
            println!("{variant}: {} requests profiled", latencies.len());
        }
        latencies.sort_unstable();
        let at =
            |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        Result {
            errors,
            rps: latencies.len() as f64 / seconds as f64,
            p50: at(0.50),
            p99: at(0.99),
            cpu,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Keeps `connections` keep-alive connections busy for `duration`; returns the latency of every
/// 200 answer and the number of other answers.
async fn load(
    addr: SocketAddr,
    request: &[u8],
    duration: Duration,
    connections: usize,
) -> (Vec<Duration>, u64) {
    let deadline = Instant::now() + duration;
    let errors = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let request = request.to_vec();
        let errors = errors.clone();
        tasks.spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let mut latencies = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            while Instant::now() < deadline {
                let start = Instant::now();
                stream.write_all(&request).await.unwrap();
                if read_response(&mut stream, &mut buf).await {
                    latencies.push(start.elapsed());
                } else {
                    errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            latencies
        });
    }
    let mut all = Vec::new();
    while let Some(l) = tasks.join_next().await {
        all.extend(l.unwrap());
    }
    (all, errors.load(std::sync::atomic::Ordering::Relaxed))
}

/// Reads one HTTP/1.1 response with a `content-length` body; whether it was a 200.
async fn read_response(stream: &mut tokio::net::TcpStream, buf: &mut [u8]) -> bool {
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buf[filled..]).await.unwrap();
        assert!(n > 0, "connection closed");
        filled += n;
        if let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).unwrap();
            let ok = head.starts_with("HTTP/1.1 200");
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            let status = (!ok).then(|| head.lines().next().unwrap_or_default().to_owned());
            while filled < end + 4 + length {
                filled += stream.read(&mut buf[filled..]).await.unwrap();
            }
            if let Some(status) = status {
                // Rare by design (a 503 means the log could not keep up, and the layer refused
                // rather than serve unrecorded): say which, on stderr.
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length.min(300)]);
                eprintln!("non-200: {status} {body}");
            }
            return ok;
        }
    }
}
