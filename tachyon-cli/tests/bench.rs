//! `tachyon bench --plot`: every row measured, and a valid SVG with one curve per row.

use std::process::Command;

#[test]
fn bench_prints_every_row_and_plots_an_svg() {
    let svg = std::env::temp_dir().join(format!("tachyon-bench-{}.svg", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_tachyon"))
        .args(["bench", "--samples", "3000", "--stream", "200000", "--plot"])
        .arg(&svg)
        .output()
        .expect("run tachyon bench");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    for row in ["floor", "SPSC round trip", "RPC echo, shared memory", "RPC echo, TCP", "streaming"]
    {
        let line =
            text.lines().find(|l| l.starts_with(row)).unwrap_or_else(|| panic!("{row}: {text}"));
        let first: f64 = line[38..].split_whitespace().next().unwrap().parse().unwrap();
        assert!(first > 0.0, "{line}");
    }
    assert!(text.contains("CPU"), "CPU placement is stated: {text}");
    let doc = std::fs::read_to_string(&svg).expect("the plot");
    let _ = std::fs::remove_file(&svg);
    assert!(doc.starts_with("<svg") && doc.trim_end().ends_with("</svg>"), "not an SVG");
    assert_eq!(doc.matches("<svg").count(), 1);
    // One curve per latency row (plus the legend's sample lines).
    assert!(doc.matches("<polyline").count() >= 4, "{}", doc.matches("<polyline").count());
    assert!(doc.contains("percentile"));
}

#[test]
fn bench_json_gives_every_row_and_the_cpu_placement() {
    let out = Command::new(env!("CARGO_BIN_EXE_tachyon"))
        .args(["bench", "--samples", "2000", "--stream", "100000", "--json"])
        .output()
        .expect("run tachyon bench --json");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{v}");
    for r in rows {
        let (p50, p99) = (r["p50_us"].as_f64().unwrap(), r["p99_us"].as_f64().unwrap());
        assert!(p50 > 0.0 && p99 >= p50, "{r}");
    }
    assert!(v["stream_messages_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(v["caller_cpu"], 0);
    assert!(v["echo_cpu"].is_u64() && v["samples"] == 2000);
}
