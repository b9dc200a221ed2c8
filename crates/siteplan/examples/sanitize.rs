//! Sanitizes an SVG file, prints the result to stdout and the mapping report, geometry and
//! timings for the given block numbers to stderr:
//! `cargo run --release -p kavling-siteplan --example sanitize -- FILE [BLOCK...]`.

use std::time::Instant;

use kavling_siteplan::{Limits, Siteplan};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: sanitize FILE [BLOCK...]")?;
    let units: Vec<String> = args.collect();
    let bytes = std::fs::read(&path)?;
    let t = Instant::now();
    let plan = Siteplan::parse(&bytes, &Limits::default())?;
    let parsed = t.elapsed();
    let refs: Vec<&str> = units.iter().map(String::as_str).collect();
    let t = Instant::now();
    let mapping = plan.map_units(&refs);
    let mapped = t.elapsed();
    let t = Instant::now();
    let geometry = plan.geometry(&mapping);
    let measured = t.elapsed();
    let t = Instant::now();
    let template = plan.color_template(&mapping);
    let rendered = template.render(|_| Some("#22c55e"));
    let coloured = t.elapsed();
    println!("{}", plan.sanitized());
    eprintln!("matched: {:?}", mapping.matched);
    eprintln!("units without element: {:?}", mapping.units_without_element);
    eprintln!(
        "unmatched element ids: {}",
        mapping.unmatched_element_ids.len()
    );
    eprintln!("warnings: {:#?}", mapping.warnings);
    eprintln!("geometry: {geometry:#?}");
    eprintln!(
        "{} bytes, {} elements; parse {parsed:?}, map {mapped:?}, geometry {measured:?}, \
         template + render {coloured:?} ({} bytes)",
        bytes.len(),
        plan.element_count(),
        rendered.len()
    );
    Ok(())
}
