//! `tachyon bench`: how fast Tachyon is on this machine, against the hardware floor.
//!
//! Rows, one after another, each side on its own thread (the echo side pinned to the
//! last CPU, the caller to the first, when there are two or more):
//! - the floor: one cache line bounced between the two threads (no ring at all);
//! - SPSC round trip: a message out on one `Bus`, back on another;
//! - RPC echo over shared memory (`RpcBus` against an `RpcServer`);
//! - RPC echo over loopback TCP (`TcpClient` against a `TcpServer` whose reactor shares
//!   the caller's CPU: a socket wake-up across CPUs costs tens of microseconds on a VM);
//! - streaming: messages per second through one `Bus`.
//!
//! It prints p50/p99/p99.9 per row and, with `--plot FILE.svg`, draws each row's latency
//! percentile curve (log scale) with `plotters`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tachyon::rpc::{Dispatcher, RpcBus, RpcServer, ServerOptions};
use tachyon::{Bus, Wait};

const PAYLOAD: [u8; 32] = [7; 32];

/// The `bench` subcommand's arguments.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Round trips measured per row.
    #[arg(long, default_value_t = 50_000)]
    pub samples: usize,
    /// Messages streamed for the throughput row.
    #[arg(long, default_value_t = 2_000_000)]
    pub stream: u64,
    /// Writes the latency percentile curves to this SVG file.
    #[arg(long)]
    pub plot: Option<std::path::PathBuf>,
    /// Prints JSON instead of the table (and no progress bar): {payload_bytes,
    /// caller_cpu, echo_cpu, samples, rows: [{name, p50_us, p99_us, p999_us}],
    /// stream_messages_per_s, plot}.
    #[arg(long)]
    pub json: bool,
}

/// One measured row: its label and its round trips in nanoseconds (sorted).
struct Row {
    label: &'static str,
    ns: Vec<u64>,
}

impl Row {
    fn pct(&self, q: f64) -> f64 {
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let i = ((self.ns.len() as f64 * q).ceil() as usize).clamp(1, self.ns.len()) - 1;
        #[allow(clippy::cast_precision_loss)]
        let v = self.ns[i] as f64 / 1000.0;
        v
    }
}

fn pin(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

/// (the caller's CPU, the echo side's CPU): the first and the last this process may
/// use, counted once before anything is pinned (a pinned thread sees one CPU).
fn cpus() -> (usize, usize) {
    static CPUS: std::sync::OnceLock<(usize, usize)> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| {
        let n = std::thread::available_parallelism().map_or(1, usize::from);
        (0, n.saturating_sub(1))
    })
}

fn socket(name: &str) -> String {
    std::env::temp_dir()
        .join(format!("tachyon-bench-{}-{name}.sock", std::process::id()))
        .to_string_lossy()
        .into_owned()
}

/// Runs `one` `samples` times (after a tenth as warm-up), timing each.
fn timed(samples: usize, bar: &ProgressBar, mut one: impl FnMut()) -> Vec<u64> {
    for _ in 0..samples / 10 {
        one();
    }
    let mut ns = Vec::with_capacity(samples);
    for i in 0..samples {
        let t = Instant::now();
        one();
        ns.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
        if i % 1024 == 0 {
            bar.inc(1024.min((samples - i) as u64));
        }
    }
    ns.sort_unstable();
    ns
}

fn floor(samples: usize, bar: &ProgressBar) -> Row {
    let (me, other) = cpus();
    let line = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let echo = {
        let (line, stop) = (line.clone(), stop.clone());
        std::thread::spawn(move || {
            pin(other);
            while !stop.load(Ordering::Relaxed) {
                let v = line.load(Ordering::Acquire);
                if v % 2 == 1 {
                    line.store(v + 1, Ordering::Release);
                }
                std::hint::spin_loop();
            }
        })
    };
    pin(me);
    let mut next = 1;
    let ns = timed(samples, bar, || {
        line.store(next, Ordering::Release);
        while line.load(Ordering::Acquire) != next + 1 {
            std::hint::spin_loop();
        }
        next += 2;
    });
    stop.store(true, Ordering::Relaxed);
    let _ = echo.join();
    Row { label: "floor: one cache line, two threads", ns }
}

fn spsc(samples: usize, bar: &ProgressBar) -> tachyon::Result<Row> {
    let (me, other) = cpus();
    let (out, back) = (socket("out"), socket("back"));
    let echo = {
        let (out, back) = (out.clone(), back.clone());
        std::thread::spawn(move || -> tachyon::Result<()> {
            pin(other);
            let rx = Bus::listen(&out, 1 << 16)?;
            let tx = Bus::listen(&back, 1 << 16)?;
            loop {
                let Ok(msg) = rx.acquire_rx_with(Wait::new()) else {
                    return Ok(()); // the caller left
                };
                tx.send(msg.data(), msg.type_id())?;
            }
        })
    };
    pin(me);
    let tx = connect(&out)?;
    let rx = connect(&back)?;
    let ns = timed(samples, bar, || {
        let _ = tx.send(&PAYLOAD, 1);
        let _ = rx.acquire_rx_with(Wait::new());
    });
    drop((tx, rx));
    let _ = echo.join();
    Ok(Row { label: "SPSC round trip (two Bus rings)", ns })
}

fn connect(path: &str) -> tachyon::Result<Bus> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Bus::connect(path) {
            Err(tachyon::Error::Connect { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            other => return other,
        }
    }
}

fn echo_dispatcher() -> Arc<Dispatcher> {
    let mut d = Dispatcher::new();
    d.register_raw(1, "echo", <[u8]>::to_vec).expect("one handler");
    Arc::new(d)
}

fn rpc(samples: usize, bar: &ProgressBar) -> tachyon::Result<Row> {
    let (me, other) = cpus();
    let path = socket("rpc");
    let server = RpcServer::bind(&path, ServerOptions::default())?;
    let stop = server.stop_handle();
    let handle = {
        let d = echo_dispatcher();
        std::thread::spawn(move || {
            pin(other);
            server.serve(d)
        })
    };
    pin(me);
    let bus = RpcBus::connect(&path)?;
    let ns = timed(samples, bar, || {
        let _ = bus.invoke(&PAYLOAD, 1, None);
    });
    drop(bus);
    // Stopped and joined: the server removes its socket as it drops.
    stop.stop();
    let _ = handle.join();
    Ok(Row { label: "RPC echo, shared memory", ns })
}

fn tcp(samples: usize, bar: &ProgressBar) -> tachyon::Result<Row> {
    let (me, _) = cpus();
    let server = tachyon::net::TcpServer::bind(
        "tcp://127.0.0.1:0",
        tachyon::net::TcpServerOptions::default(),
    )?;
    let h = server.spawn(echo_dispatcher())?;
    pin(me);
    let c = tachyon::net::TcpClient::connect(&h.address())?;
    let ns = timed(samples, bar, || {
        let _ = c.invoke(&PAYLOAD, 1, None);
    });
    Ok(Row { label: "RPC echo, TCP (server on caller CPU)", ns })
}

/// Messages per second through one ring, 32-byte payloads.
fn stream(count: u64, bar: &ProgressBar) -> tachyon::Result<f64> {
    let (me, other) = cpus();
    let path = socket("stream");
    let consumer = {
        let path = path.clone();
        std::thread::spawn(move || -> tachyon::Result<u64> {
            pin(other);
            let bus = Bus::listen(&path, 1 << 20)?;
            let mut n = 0;
            while n < count {
                n += bus.drain_batch_with(1024, Wait::new())?.len() as u64;
            }
            Ok(n)
        })
    };
    pin(me);
    let bus = connect(&path)?;
    let t = Instant::now();
    for i in 0..count {
        bus.send_timeout(&PAYLOAD, 1, Duration::from_secs(10))?;
        if i % 65536 == 0 {
            bar.inc(65536.min(count - i));
        }
    }
    bus.flush();
    let n =
        consumer.join().map_err(|_| tachyon::Error::Protocol("the consumer panicked".into()))??;
    #[allow(clippy::cast_precision_loss)]
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

/// Runs every row, prints the table, and draws the plot if asked.
///
/// # Errors
/// A row that could not set itself up, or a plot that could not be written.
pub fn run(a: &BenchArgs) -> Result<(), String> {
    let (me, other) = cpus();
    let total = a.samples as u64 * 4 + a.stream;
    let bar = if a.json { ProgressBar::hidden() } else { ProgressBar::new(total) };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {percent:>3}% {msg}").map_err(|e| e.to_string())?,
    );
    let mut rows = Vec::new();
    bar.set_message("floor");
    rows.push(floor(a.samples, &bar));
    bar.set_message("SPSC");
    rows.push(spsc(a.samples, &bar).map_err(|e| format!("SPSC: {e}"))?);
    bar.set_message("RPC over shared memory");
    rows.push(rpc(a.samples, &bar).map_err(|e| format!("RPC: {e}"))?);
    bar.set_message("RPC over TCP");
    rows.push(tcp(a.samples, &bar).map_err(|e| format!("TCP: {e}"))?);
    bar.set_message("streaming");
    let rate = stream(a.stream, &bar).map_err(|e| format!("streaming: {e}"))?;
    bar.finish_and_clear();
    if let Some(path) = &a.plot {
        plot(&rows, path).map_err(|e| format!("plot {}: {e}", path.display()))?;
    }
    if a.json {
        let rows: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": r.label,
                    "p50_us": r.pct(0.5),
                    "p99_us": r.pct(0.99),
                    "p999_us": r.pct(0.999),
                })
            })
            .collect();
        let out = serde_json::json!({
            "payload_bytes": PAYLOAD.len(),
            "caller_cpu": me,
            "echo_cpu": other,
            "samples": a.samples,
            "rows": rows,
            "stream_messages_per_s": rate,
            "plot": a.plot.as_ref().map(|p| p.display().to_string()),
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "{}-byte payloads; caller on CPU {me}, echo side on CPU {other}; {} round trips per row.",
        PAYLOAD.len(),
        a.samples
    );
    println!("{:<38} {:>10} {:>10} {:>10}", "", "p50 us", "p99 us", "p99.9 us");
    for r in &rows {
        println!(
            "{:<38} {:>10.2} {:>10.2} {:>10.2}",
            r.label,
            r.pct(0.5),
            r.pct(0.99),
            r.pct(0.999)
        );
    }
    println!("{:<38} {:>10.0} messages/s", "streaming through one Bus", rate);
    if let Some(path) = &a.plot {
        println!("latency percentiles drawn in {}", path.display());
    }
    Ok(())
}

fn plot(rows: &[Row], path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let lo = rows.iter().map(|r| r.pct(0.0).max(0.01)).fold(f64::MAX, f64::min);
    let hi = rows.iter().map(|r| r.pct(0.999)).fold(0.0, f64::max) * 1.2;
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Tachyon round trips: latency by percentile", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..99.9f64, (lo..hi).log_scale())?;
    chart.configure_mesh().x_desc("percentile").y_desc("round trip (us)").draw()?;
    for (i, r) in rows.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points = (0..=999).map(|k| {
            let q = f64::from(k) / 10.0;
            (q, r.pct(q / 100.0))
        });
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(r.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE).draw()?;
    root.present()?;
    Ok(())
}
