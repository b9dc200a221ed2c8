#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Siteplan engine benchmarks on a synthetic 5,000-unit (about 10 MB) Illustrator-style siteplan.
//!
//! Targets: parse + sanitize + map at ≥ 200 MB/s (≤ 50 ms), coloured render ≤ 5 ms, and (v1.1)
//! a 5,000-lot drawing labelled only by `<text>` parsed, sanitized and mapped in ≤ 150 ms.
//! svg-hush (Cloudflare's sanitizer) runs on the same input as a side-by-side reference.
//!
//! Every benchmark runs twice: `wall/...` with wall-clock time (criterion's default) and
//! `cpu/...` with the benchmark thread's CPU time, which is what the engine costs when the
//! shared 2-core machine makes it wait for a core.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use cpu_time::ThreadTime;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kavling_siteplan::synth::{block_numbers, generate_siteplan, generate_text_labelled_siteplan};
use kavling_siteplan::{Limits, Siteplan};

const UNITS: usize = 5_000;

/// CPU time of the benchmarking thread.
struct ThreadCpu;

static WALL: WallTime = WallTime;

impl Measurement for ThreadCpu {
    type Intermediate = ThreadTime;
    type Value = Duration;

    fn start(&self) -> ThreadTime {
        ThreadTime::now()
    }

    fn end(&self, start: ThreadTime) -> Duration {
        start.elapsed()
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        // Both measure nanoseconds, so wall time's formatting fits.
        WALL.formatter()
    }
}

fn engine_wall(c: &mut Criterion) {
    engine(c, "wall");
}

fn engine_cpu(c: &mut Criterion<ThreadCpu>) {
    engine(c, "cpu");
}

fn engine<M: Measurement>(c: &mut Criterion<M>, clock: &str) {
    let svg = generate_siteplan(UNITS);
    let units = block_numbers(UNITS);
    let refs: Vec<&str> = units.iter().map(String::as_str).collect();
    let limits = Limits::default();
    eprintln!("input: {} bytes, {} units", svg.len(), UNITS);

    let mut g = c.benchmark_group(format!("{clock}/siteplan_5000_units"));
    g.throughput(Throughput::Bytes(svg.len() as u64));
    g.sample_size(20);
    g.bench_function("parse_sanitize_map", |b| {
        b.iter(|| {
            let plan = Siteplan::parse(black_box(svg.as_bytes()), &limits).unwrap();
            let mapping = plan.map_units(&refs);
            black_box((plan, mapping))
        })
    });
    g.bench_function("parse_sanitize", |b| {
        b.iter(|| black_box(Siteplan::parse(black_box(svg.as_bytes()), &limits).unwrap()))
    });
    g.bench_function("svg_hush_reference", |b| {
        let filter = svg_hush::Filter::new();
        b.iter(|| {
            let mut out = Vec::with_capacity(svg.len());
            filter.filter(black_box(svg.as_bytes()), &mut out).unwrap();
            black_box(out)
        })
    });
    g.finish();

    let plan = Siteplan::parse(svg.as_bytes(), &limits).unwrap();
    let mapping = plan.map_units(&refs);
    assert_eq!(mapping.matched.len(), UNITS);
    let statuses = ["AVAILABLE", "BOOKED", "SOLD", "MAINTENANCE"];
    let status_of: HashMap<&str, &str> = refs
        .iter()
        .enumerate()
        .map(|(i, u)| (*u, statuses[i * 7 % 4]))
        .collect();

    let mut g = c.benchmark_group(format!("{clock}/siteplan_cached"));
    g.sample_size(20);
    let template = plan.color_template(&mapping);
    g.bench_function("render_colored", |b| {
        b.iter(|| {
            black_box(template.render(|bn| {
                status_of
                    .get(bn)
                    .and_then(|s| kavling_status::status_color(s))
            }))
        })
    });
    g.bench_function("color_template_build", |b| {
        b.iter(|| black_box(plan.color_template(&mapping)))
    });
    g.bench_function("map_units", |b| b.iter(|| black_box(plan.map_units(&refs))));
    g.bench_function("geometry", |b| {
        b.iter(|| black_box(plan.geometry(&mapping)))
    });
    g.finish();

    // v1.1: 5,000 lots labelled only by `<text>` (target ≤ 150 ms for parse + sanitize + map).
    let text_svg = generate_text_labelled_siteplan(UNITS);
    let plan = Siteplan::parse(text_svg.as_bytes(), &limits).unwrap();
    assert_eq!(plan.map_units(&refs).matched.len(), UNITS);
    eprintln!(
        "text-labelled input: {} bytes, {} units",
        text_svg.len(),
        UNITS
    );
    let mut g = c.benchmark_group(format!("{clock}/siteplan_text_labels_5000"));
    g.throughput(Throughput::Bytes(text_svg.len() as u64));
    g.sample_size(20);
    g.bench_function("parse_sanitize_map", |b| {
        b.iter(|| {
            let plan = Siteplan::parse(black_box(text_svg.as_bytes()), &limits).unwrap();
            let mapping = plan.map_units(&refs);
            black_box((plan, mapping))
        })
    });
    g.bench_function("map_units", |b| b.iter(|| black_box(plan.map_units(&refs))));
    g.finish();
}

criterion_group!(wall, engine_wall);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = engine_cpu
}
criterion_main!(wall, cpu);
