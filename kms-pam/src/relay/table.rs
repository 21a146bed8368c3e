//! The relay's only state: which gateway holds which live tunnel here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http2::SendRequest;

/// The sending half of a gateway's tunnel: the relay is the HTTP/2 client on the connection the
/// gateway dialled, and opens one `CONNECT` stream per CLI connection.
pub(crate) type TunnelSender = SendRequest<Empty<Bytes>>;

/// One gateway's tunnel.
#[derive(Clone)]
pub(crate) struct Tunnel {
    pub(crate) id: u64,
    pub(crate) sender: TunnelSender,
}

/// Gateway name → its newest tunnel.
#[derive(Default)]
pub(crate) struct TunnelTable {
    tunnels: Mutex<HashMap<String, Tunnel>>,
    next_id: AtomicU64,
}

impl TunnelTable {
    /// Registers a gateway's new tunnel; new streams go to it at once. The older one is only
    /// no longer routed to: a restarted gateway's tunnel wins over a half-open one its keepalive
    /// has not caught yet, and a gateway re-tunnelling (a renewed certificate, a drain) keeps
    /// serving the streams already on its old one until it closes it (make-before-break).
    pub(crate) fn insert(&self, gateway: &str, sender: TunnelSender) -> Tunnel {
        let tunnel = Tunnel {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            sender,
        };
        self.lock().insert(gateway.to_owned(), tunnel.clone());
        tunnel
    }

    /// The gateway's live tunnel, if any; a closed one is removed on the way.
    pub(crate) fn get(&self, gateway: &str) -> Option<Tunnel> {
        let mut tunnels = self.lock();
        match tunnels.get(gateway) {
            Some(tunnel) if tunnel.sender.is_closed() => {
                tunnels.remove(gateway);
                None
            }
            found => found.cloned(),
        }
    }

    /// Removes the gateway's tunnel `id`, unless a newer one replaced it already.
    pub(crate) fn remove(&self, gateway: &str, id: u64) {
        let mut tunnels = self.lock();
        if tunnels.get(gateway).is_some_and(|t| t.id == id) {
            tunnels.remove(gateway);
        }
    }

    /// How many gateways hold a tunnel here.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Every tunnel, to tell each gateway the relay is draining.
    pub(crate) fn all(&self) -> Vec<(String, Tunnel)> {
        self.lock()
            .iter()
            .map(|(name, tunnel)| (name.clone(), tunnel.clone()))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Tunnel>> {
        // A panic while holding the lock cannot leave the map half-updated.
        self.tunnels.lock().unwrap_or_else(|e| e.into_inner())
    }
}
