//! The launchers of the receivers the next work needs really start them:
//! a PostgreSQL cluster answers `SELECT 1`; VictoriaMetrics (Debian 13's,
//! which the test command fetches) answers its health check and a query.

use hotmeter_testkit::{Postgres, VictoriaMetrics, promql};

#[test]
fn postgres_starts_and_answers_a_query() {
    let pg = Postgres::start();
    assert_eq!(pg.psql("SELECT 1").trim(), "1");
    assert!(pg.psql("SHOW listen_addresses").trim() == "127.0.0.1", "loopback only");
    assert_eq!(pg.psql("SHOW port").trim(), pg.port().to_string());
}

#[test]
fn victoria_metrics_starts_and_answers_a_query() {
    let vm = VictoriaMetrics::start();
    assert_eq!(promql::query(vm.addr(), "vector(1)").len(), 1);
}
