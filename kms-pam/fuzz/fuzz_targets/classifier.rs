//! `RequestInfo::classify` on any method, path and query (split from the input at NUL bytes).
#![no_main]

use kms_pam::kube::RequestInfo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\0');
    let method = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or("/");
    let query = parts.next();
    let method = http::Method::from_bytes(method.as_bytes()).unwrap_or(http::Method::GET);
    let info = RequestInfo::classify(&method, path, query);
    assert_eq!(info, RequestInfo::classify(&method, path, query));
    let _ = info.stream_kind(query);
    let _ = kms_pam::kube::is_discovery_path(path);
});
