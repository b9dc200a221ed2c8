//! Sanitizes an SVG file and prints the result and the mapping for the given block numbers:
//! `cargo run -p kavling-siteplan --example sanitize -- FILE [BLOCK...]`.

use kavling_siteplan::{Limits, Siteplan};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: sanitize FILE [BLOCK...]")?;
    let units: Vec<String> = args.collect();
    let bytes = std::fs::read(&path)?;
    let plan = Siteplan::parse(&bytes, &Limits::default())?;
    println!("{}", plan.sanitized());
    let refs: Vec<&str> = units.iter().map(String::as_str).collect();
    let mapping = plan.map_units(&refs);
    eprintln!("{mapping:#?}");
    eprintln!("{:#?}", plan.geometry(&mapping));
    Ok(())
}
