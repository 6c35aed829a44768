//! PPTP control connections against the half-open guard, from plain
//! sockets in the client namespace (no guest). Needs root.
use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    time::Duration,
};

use vpn_tests::{
    gateway::Gateway,
    netns::in_ns,
    topology::{Topology, GW_WAN},
};

/// A control message header with a wrong magic cookie: the gateway closes.
const BAD_COOKIE: [u8; 12] = [0, 12, 0, 1, 0xde, 0xad, 0xbe, 0xef, 0, 1, 0, 0];

const ROUNDS: u64 = 300;

/// Per source address the guard allows a quarter of `max_half_open` (2 of
/// 8). With one connection held, a client whose bad connections the
/// gateway closes one after another must find room each time: the gateway
/// frees a connection's slot before its FIN goes out. (Freed after the FIN,
/// a prompt client is refused now and then; three such clients at once, from
/// three addresses, make it show.) A third concurrent connection is refused,
/// so the limit did hold throughout.
#[test]
fn a_closed_connection_frees_its_half_open_slot_before_the_client_sees_the_close() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, "[pptp]\nenabled = true\nmax_half_open = 8\n");
    let bad_before = gw.count("drops", "daemon_pptp_control_bad");
    let clients = [&t.inet, &t.c1, &t.nat].map(|ns| {
        let name = ns.name.clone();
        std::thread::spawn(move || in_ns(&name, bad_connections))
    });
    let held: Vec<TcpStream> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert_eq!(gw.count("drops", "daemon_pptp_control_busy"), 0);
    assert_eq!(
        gw.count("drops", "daemon_pptp_control_bad"),
        bad_before + 3 * ROUNDS
    );
    // c1 holds one; with a second the next from its address is refused.
    let second = in_ns(&t.c1.name, connect);
    in_ns(&t.c1.name, || {
        let mut rest = Vec::new();
        let _ = connect().read_to_end(&mut rest);
    });
    assert_eq!(gw.count("drops", "daemon_pptp_control_busy"), 1);
    drop((held, second));
}

fn connect() -> TcpStream {
    let to = format!("{GW_WAN}:1723").parse().unwrap();
    let s = TcpStream::connect_timeout(&to, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Holds one connection open and sends `ROUNDS` bad ones after it, each
/// once the gateway has closed the one before. Returns the held one.
fn bad_connections() -> TcpStream {
    let held = connect();
    for i in 0..ROUNDS {
        let mut s = connect();
        s.write_all(&BAD_COOKIE).unwrap();
        // The gateway's close (EOF, or a reset when our bytes beat it):
        // never a timeout.
        let mut rest = Vec::new();
        if let Err(e) = s.read_to_end(&mut rest) {
            assert_ne!(
                e.kind(),
                std::io::ErrorKind::WouldBlock,
                "round {i}: no close"
            );
        }
    }
    held
}
