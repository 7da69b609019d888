//! A scrape whose large response is still being written is never shed for
//! newcomers while a silent one can be shed instead (found by review: it
//! was reset mid-response once `max_connections` silent newcomers came).
//! Raw sockets on purpose (silent newcomers, a slow reader).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use hotmeter_exporter::{Exporter, Limits};
use hotmeter_testkit::raw;

#[test]
fn a_scrape_being_written_outlasts_silent_newcomers() {
    let registry = hotmeter::Registry::new();
    let fam = registry
        .register(
            ("big_total", "Big."),
            hotmeter::StringFamily::with_limit(&["id"], 100_000, hotmeter::SingleCounter::new),
        )
        .unwrap();
    let pad = "x".repeat(200);
    for i in 0..60_000 {
        fam.with(&[&format!("{pad}-{i}")], |c| c.inc()).unwrap();
    }
    let limits = Limits { max_connections: 4, ..Limits::default() };
    let server =
        Exporter::new(registry).listen("127.0.0.1:0".parse::<SocketAddr>().unwrap()).limits(limits).start().unwrap();
    let addr = server.local_addr();

    // The scraper: sends a complete head, reads the response slowly.
    let mut scraper = TcpStream::connect(addr).unwrap();
    scraper.write_all(&raw::get_request("/metrics", "")).unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = 0usize;
    scraper.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    got += scraper.read(&mut buf).unwrap();
    assert!(got > 0);
    std::thread::sleep(Duration::from_millis(500)); // render done, response handed to hyper

    // Four idle newcomers (they send nothing) at the cap of 4.
    let idle: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(500));

    let mut result = Ok(());
    loop {
        match scraper.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let stats = server.connection_stats();
    drop(idle);
    server.shutdown();
    eprintln!("read {got} bytes; {result:?}; {stats:?}");
    assert!(result.is_ok(), "scrape reset mid-response after {got} bytes: {result:?}, {stats:?}");
}
