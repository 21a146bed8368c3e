//! HTTP/2 flow-control settings for the tunnel and the API server connections.
//!
//! Fixed, generous windows rather than hyper's adaptive (BDP) windows: on loopback and LAN links
//! the adaptive estimate stays near the 64 KiB default, so a burst of events on thousands of
//! watches arrives as a flood of tiny DATA frames, which h2 treats as abuse and answers by closing
//! the connection (`too_many_data_frames`). The connection window bounds what one tunnel can have
//! in flight in total; the stream window what one response can, so a reader that stalls holds at
//! most that much memory per stream.

/// Per-stream window: one response may have this much in flight.
pub(crate) const STREAM_WINDOW: u32 = 1024 * 1024;
/// Per-connection window: all streams of one tunnel together.
pub(crate) const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;

/// Per-connection window of a gateway's tunnel to a relay, which carries every relayed session's
/// ciphertext (one stream each, [`STREAM_WINDOW`] each): a session whose client stops reading
/// holds its stream's window, so the connection's must be many streams' worth, or a few stalled
/// sessions would stop every other session on the tunnel (and adaptive windows, which stay near
/// 64 KiB on fast links, stop a thousand watches at their first burst).
pub(crate) const RELAY_CONNECTION_WINDOW: u32 = 256 * 1024 * 1024;

/// Concurrent streams per connection: one kubectl can hold thousands of watches open over one
/// tunnel.
pub(crate) const MAX_STREAMS: u32 = 65_536;

/// The largest header block either end of the tunnel accepts (HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE
/// and the HTTP/1.1 read buffer of kubectl's side): above the local proxy's own limit, so a request
/// the local proxy accepted never exceeds what the gateway takes (hyper's default, 16 KiB, made a
/// 64 KiB header a stream the gateway could not decode).
pub(crate) const MAX_HEADER_LIST_SIZE: u32 = 1024 * 1024;
