//! Writes the pages' status vocabulary (`statuses.js`, `statuses.css`) from the one table in
//! `kavling-status`, so the pages never hold a copy of it.

fn main() -> std::io::Result<()> {
    let out = std::env::var_os("OUT_DIR")
        .map(std::path::PathBuf::from)
        .ok_or_else(|| std::io::Error::other("cargo did not set OUT_DIR"))?;
    std::fs::write(out.join("statuses.js"), kavling_status::js_module())?;
    std::fs::write(out.join("statuses.css"), kavling_status::css())?;
    // Only the table (a build dependency, tracked by cargo) and this script change the output.
    println!("cargo::rerun-if-changed=build.rs");
    Ok(())
}
