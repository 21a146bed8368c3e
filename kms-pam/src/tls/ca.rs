//! Certificate authority (filled in).
