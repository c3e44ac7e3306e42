//! Inventory benchmarks: collection time (hardware, status, software separately), full record size
//! raw and zstd-compressed, and the delta after one package change.
//!
//! Run: `cargo bench -p tether-agent --bench inventory`

use std::time::{Duration, Instant};

use tether_agent::inventory::Collector;
use tether_proto::codec;

fn time<T>(runs: u32, mut f: impl FnMut() -> T) -> (Duration, Duration, T) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        last = Some(f());
        times.push(t.elapsed());
    }
    times.sort();
    // `runs` ≥ 1, so there is a median and a last value.
    let median = times[times.len() / 2];
    let max = times[times.len() - 1];
    (median, max, last.unwrap_or_else(|| unreachable!()))
}

fn main() {
    let c = Collector::default();
    let runs = 30;
    let (hw_med, hw_max, _) = time(runs, || c.hardware());
    let (st_med, st_max, _) = time(runs, || c.status());
    let (sw_med, sw_max, sw) = time(runs, || c.software());
    let (all_med, all_max, inv) = time(runs, || c.collect());
    println!("collection (median / max of {runs} runs):");
    println!("  hardware  {:>9.2?} / {:>9.2?}", hw_med, hw_max);
    println!("  status    {:>9.2?} / {:>9.2?}", st_med, st_max);
    println!(
        "  software  {:>9.2?} / {:>9.2?}  ({} packages)",
        sw_med,
        sw_max,
        sw.packages.len()
    );
    println!("  total     {:>9.2?} / {:>9.2?}", all_med, all_max);

    let raw = codec::to_body(&inv).unwrap_or_default();
    let json = serde_json::to_vec(&inv).unwrap_or_default();
    let z = zstd::encode_all(&raw[..], 3).unwrap_or_default();
    println!(
        "full record: {} B bincode raw, {} B zstd-3 ({:.1} KiB); JSON {} B",
        raw.len(),
        z.len(),
        z.len() as f64 / 1024.0,
        json.len()
    );

    // One package upgraded, as the next scheduled report would see it.
    let mut next = c.collect();
    if let Some(p) = next.software.packages.get_mut(0) {
        p.version.push_str("+1");
    }
    let delta = next.delta_from(&inv);
    let d = codec::to_body(&delta).unwrap_or_default();
    let dz = zstd::encode_all(&d[..], 3).unwrap_or_default();
    println!(
        "delta after one package change: {} B raw, {} B zstd-3 (status part {} B)",
        d.len(),
        dz.len(),
        codec::to_body(&delta.status).unwrap_or_default().len()
    );
    let (dt, _, _) = time(runs, || next.delta_from(&inv));
    let (at, _, _) = time(runs, || inv.apply(&delta));
    println!(
        "delta compute {dt:.2?}, apply {at:.2?}, digest {:.2?}",
        time(runs, || inv.digest()).0
    );
}
