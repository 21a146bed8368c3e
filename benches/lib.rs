//! Benchmarks support crate; the benchmarks are the `[[bench]]` targets.
