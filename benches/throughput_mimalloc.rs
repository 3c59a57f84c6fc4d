//! The throughput bench (`throughput.rs`) with mimalloc as the global allocator.
//!
//! Run: `cargo bench -p tower-customer-session-benches --bench throughput_mimalloc`; options as for `throughput`.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[allow(dead_code)] // its own `main` is for its own target
#[path = "throughput.rs"]
mod throughput;

fn main() {
    throughput::run_rows("throughput-mimalloc");
}
