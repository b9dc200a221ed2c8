//! Load generator (placeholder until the realtime issue lands it).
fn main() {
    eprintln!("kavling-loadgen: not built yet");
}
