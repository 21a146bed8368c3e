//! TLS material: the certificate authority, session and gateway certificates, rustls configs.

pub mod ca;
