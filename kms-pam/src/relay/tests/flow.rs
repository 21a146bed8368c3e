//! Flow control on a gateway's tunnel: sessions share one HTTP/2 connection, so one whose client
//! stops reading must not stop the others.

use super::*;

/// Serves every tunnel: a first byte `F` asks for a flood of `bytes`; anything else is echoed.
fn flood_or_echo(mut tunnels: RelayTunnels, bytes: usize) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok(tunnel) = tunnels.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = tokio::io::split(tunnel.io);
                let mut first = [0u8; 1];
                if read.read_exact(&mut first).await.is_err() {
                    return;
                }
                if &first == b"F" {
                    let chunk = vec![0x5a_u8; 64 * 1024];
                    let mut sent = 0;
                    while sent < bytes && write.write_all(&chunk).await.is_ok() {
                        sent += chunk.len();
                    }
                } else {
                    let _ = write.write_all(&first).await;
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                }
            });
        }
    })
}

/// A session whose client reads nothing while the gateway sends it far more than any socket
/// buffer holds: its stream fills its own window, and the tunnel's other sessions go on. (With
/// hyper's adaptive windows, which start at 64 KiB, the first such session stopped the whole
/// tunnel: the relayed watches of the 1,000-session benchmark stopped delivering events.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_stops_reading_does_not_stop_the_others_on_its_tunnel() {
    let kms = Kms::new();
    let relay = kms.relay("edge").await;
    let gateway = kms.gateway("gw-a", &[&relay.addr]);
    let links = gateway.links();
    let _server = flood_or_echo(gateway, 64 * 1024 * 1024);
    connected(&links, 1).await;
    let stalled = kms.grant("gw-a", HOUR).await;
    let mut stalled = connect_soon(&kms.connector(&stalled, "gw-a", &[&relay.addr])).await;
    stalled.write_all(b"F").await.unwrap();
    // Let the flood fill the sockets and the stream's window.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..3 {
        let other = kms.grant("gw-a", HOUR).await;
        let mut io = timeout(
            PATIENCE,
            kms.connector(&other, "gw-a", &[&relay.addr]).connect(),
        )
        .await
        .unwrap_or_else(|_| panic!("session {i} could not even connect past the stalled one"))
        .unwrap();
        round_trip(&mut io, &format!("session {i} still flows")).await;
    }
    drop(stalled);
}
