//! Examples support crate; the examples themselves are the `[[example]]` targets.
