//! The README's code, compiled and checked, so the README stays true.

#[test]
fn readme_five_lines_and_labels() -> Result<(), Box<dyn std::error::Error>> {
    let registry = hotmeter::Registry::new();
    let writes = registry.counter("checkpoint_writes_total", "Checkpoint writes.")?;
    let latency =
        registry.histogram("checkpoint_write_duration_seconds", "Write time.", hotmeter::Buckets::default())?;
    writes.inc();
    latency.observe(0.004);

    hotmeter::label_enum! {
        /// Outcome of a write.
        pub enum Status: "status" { Success = "success", Error = "error" }
    }
    let by_status: hotmeter::Family<Status, hotmeter::Counter> =
        registry.typed_family("writes_total", "Writes by outcome.", hotmeter::Counter::new)?;
    by_status.get(Status::Error).inc();
    let by_space =
        registry.labeled_family("observations_total", "By memory space.", &["memory_space"], hotmeter::Counter::new)?;
    by_space.with(&["tenant-a"], |c| c.inc())?;
    let wait = registry.register(
        hotmeter::Opts::new("queue_wait_seconds", "Time in the queue.")
            .unit(hotmeter::Unit::SECONDS)
            .const_label("pool", "io"),
        hotmeter::Histogram::new(hotmeter::Buckets::default()),
    )?;
    wait.observe(0.5);

    let snap = registry.snapshot();
    assert_eq!(snap.value("checkpoint_writes_total", &[]), Some(&hotmeter::OwnedValue::Counter(1)));
    assert_eq!(snap.value("writes_total", &["error"]), Some(&hotmeter::OwnedValue::Counter(1)));
    assert_eq!(snap.value("observations_total", &["tenant-a"]), Some(&hotmeter::OwnedValue::Counter(1)));
    assert_eq!(latency.snapshot().count(), 1);
    let family = snap.family("queue_wait_seconds").expect("registered");
    assert_eq!(family.desc.const_labels, [("pool".to_owned(), "io".to_owned())]);
    assert_eq!(family.desc.unit.as_ref().map(|u| u.as_str()), Some("seconds"));
    Ok(())
}

#[test]
fn readme_utf8_names() -> Result<(), Box<dyn std::error::Error>> {
    let registry = hotmeter::Registry::builder().name_validation(hotmeter::NameValidation::Utf8).build()?;
    let requests = registry.counter("http.server.requests_total", "Requests served.")?;
    requests.inc();
    assert!(matches!(
        registry.counter("http_server_requests_total", "Requests served."),
        Err(hotmeter::RegistryError::EscapingCollision { .. })
    ));
    Ok(())
}

/// README "Native histograms".
#[test]
fn readme_native_histograms() -> Result<(), Box<dyn std::error::Error>> {
    let registry = hotmeter::Registry::new();
    let latency = registry.native_histogram(
        "write_seconds",
        "Write latency.",
        // Classic buckets alongside ("both"), for scrapers without native support.
        hotmeter::NativeOpts::new().classic(hotmeter::Buckets::new([0.001, 0.01, 0.1])?),
    )?;
    latency.observe(30e-6);
    let s = latency.snapshot();
    assert_eq!((s.native.schema, s.native.count, s.classic_counts.as_slice()), (3, 1, &[1, 0, 0, 0][..]));
    Ok(())
}

/// README "Series that come and go".
#[test]
fn readme_series_that_come_and_go() -> Result<(), Box<dyn std::error::Error>> {
    use std::time::Duration;

    let registry = hotmeter::Registry::builder().idle_timeout(Duration::from_secs(600)).build()?;
    let jobs =
        registry.labeled_family("tenant_jobs_total", "Jobs by tenant.", &["tenant", "kind"], hotmeter::Counter::new)?;
    jobs.with(&["t1", "resize"], |c| c.inc())?;
    assert_eq!(jobs.idle_timeout(), Some(Duration::from_secs(600)));
    assert!(jobs.reclaims_memory());
    for (tenant, kind) in [("t1", "thumbnail"), ("t1", "crop"), ("t2", "thumbnail"), ("t2", "crop")] {
        jobs.with(&[tenant, kind], |c| c.inc())?;
    }
    assert!(jobs.remove(&["t1", "resize"])?);
    assert_eq!(jobs.retain(|values| values[1] != "thumbnail"), 2);
    assert_eq!(jobs.remove_matching(&[("tenant", "t1")])?, 1);
    let snap = registry.snapshot();
    let left: Vec<_> = snap.family("tenant_jobs_total").unwrap().series.iter().map(|s| s.labels.clone()).collect();
    assert_eq!(left, [vec![("tenant".to_owned(), "t2".to_owned()), ("kind".to_owned(), "crop".to_owned())]]);
    // Back again: from zero.
    jobs.with(&["t1", "resize"], |c| c.inc())?;
    assert_eq!(jobs.get(&["t1", "resize"])?.get(), 1);

    let by_queue =
        hotmeter::StringFamily::builder(&["queue"], hotmeter::Gauge::new).limit(10_000).reclaim_memory().build();
    assert!(by_queue.reclaims_memory());
    assert_eq!((by_queue.limit(), by_queue.idle_timeout()), (10_000, None));
    Ok(())
}
