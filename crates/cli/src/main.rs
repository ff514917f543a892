//! The `flowdrill` binary: arguments, output formatting and wiring of the library crates.
fn main() {
    println!("flowdrill {}", env!("CARGO_PKG_VERSION"));
}
