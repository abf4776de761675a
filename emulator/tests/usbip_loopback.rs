//! The USB/IP server on 127.0.0.1 (and over in-memory pipes): the in-repo
//! client lists, imports, reads descriptors, configures and presses fobs
//! via interrupt transfers; hostile clients do not disturb the others.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::sync::Arc;

use fobsim_clock::TrueClock;
use fobsim_core::Timestamp;
use fobsim_emulator::command::{Command, parse_display};
use fobsim_emulator::hid::HidOptions;
use fobsim_emulator::usbip::client::{ClientError, Imported, list};
use fobsim_emulator::usbip::device::{ECONNRESET, EPIPE, Setup};
use fobsim_emulator::usbip::pdu::{Direction, Ret};
use fobsim_emulator::usbip::{UsbipServer, bus_id};
use fobsim_emulator::{Fleet, FleetSpec};
use fobsim_firmware::Display;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

const T0: u64 = 1_111_111_109;

fn fleet(n: usize) -> Arc<Fleet> {
    let spec = FleetSpec::uniform("gaht", n, 7).unwrap();
    Arc::new(Fleet::new(&spec, TrueClock::manual(Timestamp::from_secs(T0)), false).unwrap())
}

/// The code fob `index` shows when pressed now (from a clone of the fleet's fob).
fn expected_code(fleet: &Fleet, index: usize) -> String {
    fleet
        .with_fob(index, |fob, now| fob.clone().press(now))
        .unwrap()
        .code()
        .unwrap()
        .to_string()
}

async fn start(fleet: Arc<Fleet>, options: HidOptions) -> (std::net::SocketAddr, Arc<UsbipServer>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Arc::new(UsbipServer::new(fleet, options));
    tokio::spawn(Arc::clone(&server).run(listener));
    (addr, server)
}

fn utf16_string(desc: &[u8]) -> String {
    let units: Vec<u16> = desc[2..]
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_configure_and_press_over_tcp_loopback() {
    let fleet = fleet(3);
    let (addr, _server) = start(Arc::clone(&fleet), HidOptions::default()).await;

    let devs = list(TcpStream::connect(addr).await.unwrap()).await.unwrap();
    let ids: Vec<_> = devs
        .iter()
        .map(|d| (d.busid.as_str(), d.vendor, d.interfaces.len()))
        .collect();
    assert_eq!(
        ids,
        [("1-1", 0x1209, 1), ("1-2", 0x1209, 1), ("1-3", 0x1209, 1)]
    );

    for index in [1, 2] {
        let mut dev = Imported::import(TcpStream::connect(addr).await.unwrap(), &bus_id(index))
            .await
            .unwrap();
        // Descriptors as a kernel reads them.
        let d = dev.get_descriptor(1, 0, 18).await.unwrap();
        assert_eq!((d[8], d[9], d[16]), (0x09, 0x12, 3));
        let head = dev.get_descriptor(2, 0, 9).await.unwrap();
        let total = u16::from_le_bytes([head[2], head[3]]);
        let cfg = dev.get_descriptor(2, 0, total).await.unwrap();
        assert_eq!(cfg.len(), usize::from(total));
        let serial = utf16_string(&dev.get_descriptor(3, 3, 255).await.unwrap());
        assert_eq!(serial, fleet.devices()[index].serial().as_str());
        dev.set_configuration(1).await.unwrap();

        let want = expected_code(&fleet, index);
        let answer = dev.command(&Command::Press).await.unwrap();
        assert_eq!((answer.status, answer.text.as_str()), (0, want.as_str()));
        let shown = dev.command(&Command::Display).await.unwrap();
        assert_eq!(
            parse_display(&shown.text)
                .unwrap()
                .code()
                .unwrap()
                .to_string(),
            want
        );
        // A multi-fragment answer (INFO is over 60 bytes).
        let info = dev.command(&Command::Info).await.unwrap();
        assert!(info.text.len() > 60, "{}", info.text);
        assert!(
            info.text
                .contains(&format!("serial={}", fleet.devices()[index].serial())),
            "{}",
            info.text
        );
        // The same error codes as the serial protocol.
        let refused = dev.command(&Command::Clock).await.unwrap();
        assert_eq!(refused.status, 403);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_in_urbs_unlink_stall_and_exclusive_import() {
    let fleet = fleet(2);
    let (addr, _server) = start(Arc::clone(&fleet), HidOptions::default()).await;
    let mut dev = Imported::import(TcpStream::connect(addr).await.unwrap(), "1-1")
        .await
        .unwrap();

    // A second import of the same fob is refused while the first lives.
    let again = Imported::import(TcpStream::connect(addr).await.unwrap(), "1-1").await;
    assert!(
        matches!(again, Err(ClientError::ImportRefused(_))),
        "{again:?}"
    );
    let unknown = Imported::import(TcpStream::connect(addr).await.unwrap(), "9-9").await;
    assert!(matches!(unknown, Err(ClientError::ImportRefused(_))));

    // An IN URB with no data stays pending: the next reply is for the
    // control transfer sent after it.
    let pending = dev
        .submit(Direction::In, 1, [0; 8], 64, vec![])
        .await
        .unwrap();
    let stall = dev
        .submit(
            Direction::In,
            0,
            Setup {
                request_type: 0xC0,
                request: 0x42,
                value: 0,
                index: 0,
                length: 4,
            }
            .emit(),
            4,
            vec![],
        )
        .await
        .unwrap();
    match dev.recv().await.unwrap() {
        Ret::Submit(r) => assert_eq!((r.seqnum, r.status), (stall, EPIPE)),
        other => panic!("{other:?}"),
    }
    // UNLINK cancels it with -ECONNRESET and it is never completed.
    let unlink = dev.unlink(pending).await.unwrap();
    match dev.recv().await.unwrap() {
        Ret::Unlink(r) => assert_eq!((r.seqnum, r.status), (unlink, ECONNRESET)),
        other => panic!("{other:?}"),
    }
    // A press now uses fresh URBs; its answer proves no stale completion came.
    let a = dev.command(&Command::Press).await.unwrap();
    assert_eq!(a.text, expected_code(&fleet, 0));

    // Closing the connection frees the fob for the next import.
    drop(dev.into_inner());
    let mut tries = 0;
    let mut dev = loop {
        match Imported::import(TcpStream::connect(addr).await.unwrap(), "1-1").await {
            Ok(d) => break d,
            // The server notices the close asynchronously.
            Err(ClientError::ImportRefused(_)) if tries < 1000 => {
                tries += 1;
                tokio::task::yield_now().await;
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(
        dev.command(&Command::Ping(Some("x".into())))
            .await
            .unwrap()
            .text,
        "PONG x"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_do_not_stop_the_server() {
    let fleet = fleet(1);
    let (addr, _server) = start(Arc::clone(&fleet), HidOptions::default()).await;

    // Garbage operation, oversized lengths, unknown commands, truncated PDUs.
    let mut junk = TcpStream::connect(addr).await.unwrap();
    junk.write_all(&[0x01, 0x11, 0x12, 0x34, 0, 0, 0, 0])
        .await
        .unwrap();
    let mut sink = Vec::new();
    assert_eq!(
        junk.read_to_end(&mut sink).await.unwrap(),
        0,
        "closed without a reply"
    );

    let mut big = Imported::import(TcpStream::connect(addr).await.unwrap(), "1-1")
        .await
        .unwrap()
        .into_inner();
    let mut hdr = vec![0u8; 48];
    hdr[3] = 1; // CMD_SUBMIT, OUT
    hdr[20..24].copy_from_slice(&0xFFFF_FFF0u32.to_be_bytes());
    hdr[24..28].copy_from_slice(&0x7FFF_FFFFu32.to_be_bytes());
    big.write_all(&hdr).await.unwrap();
    let mut sink = Vec::new();
    let _ = big.read_to_end(&mut sink).await; // the server closes
    assert!(sink.is_empty());

    // A client that vanishes with an IN URB pending and half a PDU sent.
    let mut gone = Imported::import(TcpStream::connect(addr).await.unwrap(), "1-1").await;
    while let Err(ClientError::ImportRefused(_)) = gone {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        gone = Imported::import(TcpStream::connect(addr).await.unwrap(), "1-1").await;
    }
    let mut gone = gone.unwrap();
    gone.submit(Direction::In, 1, [0; 8], 64, vec![])
        .await
        .unwrap();
    let mut io = gone.into_inner();
    io.write_all(&[0, 0, 0, 1, 0, 0]).await.unwrap();
    drop(io);

    // The server still serves: list and press.
    let devs = list(TcpStream::connect(addr).await.unwrap()).await.unwrap();
    assert_eq!(devs.len(), 1);
    let mut dev = loop {
        match Imported::import(TcpStream::connect(addr).await.unwrap(), "1-1").await {
            Ok(d) => break d,
            Err(ClientError::ImportRefused(_)) => {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(
        dev.command(&Command::Press).await.unwrap().text,
        expected_code(&fleet, 0)
    );
}

#[tokio::test]
async fn served_over_an_in_memory_duplex_with_the_keyboard() {
    let fleet = fleet(1);
    let server = UsbipServer::new(Arc::clone(&fleet), HidOptions { keyboard: true });
    let (client_io, server_io) = tokio::io::duplex(4096);
    let serving = async { server.serve_connection(server_io).await };
    let talking = async {
        let mut dev = Imported::import(client_io, "1-1").await.unwrap();
        assert_eq!(dev.info().interfaces.len(), 2);
        dev.set_configuration(1).await.unwrap();
        let code = dev.command(&Command::Press).await.unwrap().text;
        // The keyboard types the code + Enter on endpoint 2: key down, key up.
        let mut typed = Vec::new();
        for _ in 0..2 * (code.len() + 1) {
            let s = dev
                .submit(Direction::In, 2, [0; 8], 8, vec![])
                .await
                .unwrap();
            match dev.recv().await.unwrap() {
                Ret::Submit(r) if r.seqnum == s => typed.push(r.data),
                other => panic!("{other:?}"),
            }
        }
        let keys: Vec<u8> = typed.iter().step_by(2).map(|r| r[2]).collect();
        assert!(typed.iter().skip(1).step_by(2).all(|r| r == &[0; 8]));
        let mut want: Vec<u8> = code
            .bytes()
            .map(|d| if d == b'0' { 0x27 } else { 0x1E + d - b'1' })
            .collect();
        want.push(0x28);
        assert_eq!(keys, want);
        assert!(matches!(parse_display(&code).unwrap(), Display::Code(_)));
        drop(dev.into_inner());
    };
    let (served, ()) = tokio::join!(serving, talking);
    served.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_clients_time_out_and_release_their_import() {
    use fobsim_emulator::usbip::Timeouts;
    use std::time::{Duration, Instant};
    let fleet = fleet(1);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let idle = Duration::from_millis(300);
    let server = Arc::new(
        UsbipServer::new(Arc::clone(&fleet), HidOptions::default()).with_timeouts(Timeouts {
            handshake: Duration::from_millis(200),
            idle: Some(idle),
        }),
    );
    tokio::spawn(Arc::clone(&server).run(listener));
    let closed_within = |mut s: TcpStream, limit: Duration| async move {
        let started = Instant::now();
        let mut sink = Vec::new();
        let r = tokio::time::timeout(limit, s.read_to_end(&mut sink)).await;
        (r.is_ok(), started.elapsed())
    };

    // A connection that never asks is closed after the handshake timeout.
    let silent = TcpStream::connect(addr).await.unwrap();
    let (closed, took) = closed_within(silent, Duration::from_secs(5)).await;
    assert!(closed && took >= Duration::from_millis(150), "{took:?}");

    // An importer that goes silent holds the fob, then loses it.
    let holder = Imported::import(TcpStream::connect(addr).await.unwrap(), "1-1")
        .await
        .unwrap();
    let refused = Imported::import(TcpStream::connect(addr).await.unwrap(), "1-1").await;
    assert!(
        matches!(refused, Err(ClientError::ImportRefused(_))),
        "{refused:?}"
    );
    let (closed, took) = closed_within(holder.into_inner(), Duration::from_secs(5)).await;
    assert!(
        closed && took >= idle - Duration::from_millis(50),
        "{took:?}"
    );
    let mut next = Imported::import(TcpStream::connect(addr).await.unwrap(), "1-1")
        .await
        .expect("the fob is free again");

    // A host waiting on the fob (an IN transfer pending) is not idle.
    let pending = next
        .submit(Direction::In, 1, [0; 8], 64, vec![])
        .await
        .unwrap();
    tokio::time::sleep(idle * 2).await;
    let unlink = next.unlink(pending).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), next.recv())
        .await
        .expect("still served")
        .unwrap();
    assert!(
        matches!(answer, Ret::Unlink(r) if r.seqnum == unlink),
        "{answer:?}"
    );
    assert_eq!(
        next.command(&Command::Ping(Some("still".into())))
            .await
            .unwrap()
            .text,
        "PONG still"
    );

    // A holder that goes away releases the fob at once.
    drop(next.into_inner());
    let started = Instant::now();
    loop {
        match Imported::import(TcpStream::connect(addr).await.unwrap(), "1-1").await {
            Ok(_) => break,
            Err(ClientError::ImportRefused(_)) if started.elapsed() < idle / 2 => {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err(e) => panic!("not released when its client went away: {e}"),
        }
    }
}
