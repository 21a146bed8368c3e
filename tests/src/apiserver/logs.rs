//! `pods/NAME/log`: a few nginx-like lines, or an endless `follow=true` stream.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::stream;
use http::{Response, StatusCode};
use tokio::time::Instant;

use super::clock::rfc3339;
use super::request::Query;
use super::response::{full, response, streaming, ApiError, Body};
use super::store::Stored;
use super::State;

/// Lines a container has written before anyone asks.
const STARTUP: &[&str] = &[
    "/docker-entrypoint.sh: /docker-entrypoint.d/ is not empty, will attempt to perform configuration",
    "/docker-entrypoint.sh: Looking for shell scripts in /docker-entrypoint.d/",
    "/docker-entrypoint.sh: Launching /docker-entrypoint.d/10-listen-on-ipv6-by-default.sh",
    "10-listen-on-ipv6-by-default.sh: info: Enabled listen on IPv6 in /etc/nginx/conf.d/default.conf",
    "/docker-entrypoint.sh: Configuration complete; ready for start up",
    "2025/04/22 16:10:00 [notice] 1#1: using the \"epoll\" event method",
    "2025/04/22 16:10:00 [notice] 1#1: nginx/1.27.4",
    "2025/04/22 16:10:00 [notice] 1#1: start worker processes",
];

/// Access-log lines written before the first request, after the startup lines.
const BACKLOG_ACCESS_LINES: u64 = 4;

/// Which container of `pod` a request means, with the real server's errors.
pub(crate) fn container_name(pod: &Stored, requested: Option<&str>) -> Result<String, ApiError> {
    let names: Vec<&str> = pod.object["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    match requested.filter(|c| !c.is_empty()) {
        Some(name) if names.contains(&name) => Ok(name.to_owned()),
        Some(name) => Err(ApiError::bad_request(format!(
            "container {name} is not valid for pod {}",
            pod.name()
        ))),
        None if names.len() == 1 => Ok(names[0].to_owned()),
        None => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {}, choose one of: [{}]",
            pod.name(),
            names.join(" ")
        ))),
    }
}

/// The `n`th access-log line of a running container.
fn access_line(pod: &str, n: u64) -> String {
    format!("10.244.0.1 - - [{pod}] \"GET /?request={n} HTTP/1.1\" 200 615 \"-\" \"kube-probe/1.32\" \"-\"")
}

fn with_timestamp(line: &str, timestamps: bool) -> String {
    if timestamps {
        format!("{} {line}\n", rfc3339(SystemTime::now()))
    } else {
        format!("{line}\n")
    }
}

/// What the container has logged so far (the last `tail` lines, if given).
fn backlog(pod: &str, tail: Option<usize>, timestamps: bool) -> String {
    let mut lines: Vec<String> = STARTUP.iter().map(|l| (*l).to_owned()).collect();
    lines.extend((0..BACKLOG_ACCESS_LINES).map(|n| access_line(pod, n)));
    let skip = tail.map_or(0, |tail| lines.len().saturating_sub(tail));
    lines[skip..]
        .iter()
        .map(|l| with_timestamp(l, timestamps))
        .collect()
}

pub(crate) fn serve(
    state: &Arc<State>,
    pod: &Stored,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    let container = container_name(pod, query.get("container"))?;
    if query.flag("previous")? {
        return Err(ApiError::bad_request(format!(
            "previous terminated container \"{container}\" in pod \"{}\" not found",
            pod.name()
        )));
    }
    let timestamps = query.flag("timestamps")?;
    let tail = query
        .number("tailLines")?
        .filter(|n| *n >= 0)
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let limit = query
        .number("limitBytes")?
        .filter(|n| *n > 0)
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let backlog = backlog(pod.name(), tail, timestamps);

    if !query.flag("follow")? {
        let mut text = backlog.into_bytes();
        text.truncate(limit.unwrap_or(usize::MAX));
        return Ok(response(StatusCode::OK, "text/plain", full(text)));
    }
    let follow = Follow {
        pod: pod.name().to_owned(),
        pending: Some(Bytes::from(backlog)),
        next: BACKLOG_ACCESS_LINES,
        next_at: Instant::now() + state.config.log_interval,
        interval: state.config.log_interval,
        timestamps,
        left: limit.unwrap_or(usize::MAX),
        cancel: state.cancel.clone(),
        _guard: state.streams.enter(),
    };
    let lines = stream::unfold(follow, |mut follow| async move {
        let chunk = follow.next_chunk().await?;
        Some((chunk, follow))
    });
    Ok(response(StatusCode::OK, "text/plain", streaming(lines)))
}

/// A `logs -f` stream: the backlog, then a new line every interval until the client leaves.
struct Follow {
    pod: String,
    pending: Option<Bytes>,
    next: u64,
    next_at: Instant,
    interval: std::time::Duration,
    timestamps: bool,
    /// `limitBytes` still allowed.
    left: usize,
    cancel: tokio_util::sync::CancellationToken,
    _guard: super::record::StreamGuard,
}

impl Follow {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.left == 0 {
            return None;
        }
        let mut chunk = match self.pending.take().filter(|b| !b.is_empty()) {
            Some(chunk) => chunk,
            None => {
                tokio::select! {
                    () = self.cancel.cancelled() => return None,
                    () = tokio::time::sleep_until(self.next_at) => {}
                }
                self.next_at += self.interval;
                let line = with_timestamp(&access_line(&self.pod, self.next), self.timestamps);
                self.next += 1;
                Bytes::from(line)
            }
        };
        chunk.truncate(self.left);
        self.left -= chunk.len();
        Some(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(containers: &[&str]) -> Stored {
        let containers: Vec<_> = containers.iter().map(|c| json!({"name": c})).collect();
        let object = json!({"metadata": {"name": "web"}, "spec": {"containers": containers}});
        Stored {
            json: Bytes::from(object.to_string()),
            object: Arc::new(object),
        }
    }

    #[test]
    fn picks_the_container_like_the_real_server() {
        assert_eq!(container_name(&pod(&["nginx"]), None).unwrap(), "nginx");
        assert_eq!(container_name(&pod(&["a", "b"]), Some("b")).unwrap(), "b");
        let error = container_name(&pod(&["a", "b"]), None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "a container name must be specified for pod web, choose one of: [a b]"
        );
        assert!(container_name(&pod(&["a"]), Some("zzz")).is_err());
    }

    #[test]
    fn timestamps_prefix_lines() {
        assert!(with_timestamp("x", true).ends_with("Z x\n"));
        assert_eq!(with_timestamp("x", false), "x\n");
    }
}
