//! The IO shells are generic over `AsyncRead + AsyncWrite`: driven here over
//! `tokio::io::duplex` pipes, no pty or socket involved.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::sync::Arc;

use fobsim_clock::TrueClock;
use fobsim_clock::control::{Request, Response};
use fobsim_core::Timestamp;
use fobsim_emulator::serial::Command;
use fobsim_emulator::{Fleet, FleetSpec};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

fn fleet() -> Arc<Fleet> {
    let spec = FleetSpec::uniform("gaht", 2, 4).unwrap();
    Arc::new(
        Fleet::new(
            &spec,
            TrueClock::manual(Timestamp::from_secs(1_234_567_890)),
            false,
        )
        .unwrap(),
    )
}

#[tokio::test]
async fn serial_protocol_over_a_duplex_pipe() {
    let fleet = fleet();
    let (client, server) = tokio::io::duplex(64);
    let f = Arc::clone(&fleet);
    let task = tokio::spawn(async move {
        fobsim_emulator::serial::server::serve(server, |cmd: &Command| f.execute(1, cmd).unwrap())
            .await
    });
    let (r, mut w) = tokio::io::split(client);
    let mut lines = BufReader::new(r).lines();
    w.write_all(b"INFO\r\nPR").await.unwrap();
    let info = lines.next_line().await.unwrap().unwrap();
    assert!(info.starts_with("OK serial=GAHT00000002 "), "{info}");
    w.write_all(b"ESS\r\n").await.unwrap();
    let press = lines.next_line().await.unwrap().unwrap();
    let want = fleet.with_fob(1, |fob, now| fob.display(now)).unwrap();
    assert_eq!(press, format!("OK {want}"));
    // Half a line, then the client goes: the server ends cleanly.
    w.write_all(b"DISP").await.unwrap();
    drop(w);
    drop(lines);
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn control_plane_over_a_duplex_pipe() {
    let fleet = fleet();
    let (client, server) = tokio::io::duplex(64);
    let f = Arc::clone(&fleet);
    let task = tokio::spawn(async move {
        fobsim_clock::control::server::serve(server, f.clock(), f.as_ref()).await
    });
    let (r, mut w) = tokio::io::split(client);
    let mut lines = BufReader::new(r).lines();
    w.write_all(&Request::Advance { by: "1h".into() }.to_line())
        .await
        .unwrap();
    let resp = Response::parse(lines.next_line().await.unwrap().unwrap().as_bytes()).unwrap();
    assert!(resp.ok);
    assert_eq!(resp.clock.unwrap().now_ms, (1_234_567_890 + 3600) * 1000);
    assert_eq!(fleet.now(), Timestamp::from_secs(1_234_567_890 + 3600));
    w.write_all(b"{\"op\":\"drift\",\"serial\":\"GAHT00000001\",\"offset\":\"-2m\"}\n")
        .await
        .unwrap();
    let resp = Response::parse(lines.next_line().await.unwrap().unwrap().as_bytes()).unwrap();
    assert_eq!(resp.fob.unwrap().offset_ms, -120_000);
    assert_eq!(
        fleet.with_fob(0, |fob, now| fob.drift(now).offset_ms),
        Some(-120_000)
    );
    drop(w);
    drop(lines);
    task.await.unwrap().unwrap();
}
