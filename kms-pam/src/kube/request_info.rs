//! Request classification (filled in).
