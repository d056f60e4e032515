//! Conformance checks of the audit log: genesis, the hash chain (also across two nodes and
//! under concurrent appends) and its filters.

use super::*;

/// Asserts that the whole audit log is one unbroken chain: seqs 1, 2, 3, ..., the first entry
/// chained to [`AuditEntry::GENESIS`], every other one to its predecessor, every one intact.
pub async fn assert_audit_log_intact(store: &dyn Store) {
    let mut prev = AuditEntry::GENESIS.to_vec();
    let mut prev_seq = 0;
    for e in audit_log(store).await {
        assert_eq!(e.seq, prev_seq + 1, "audit seqs are consecutive");
        assert_eq!(
            e.prev_hash, prev,
            "entry {} chains to its predecessor",
            e.seq
        );
        assert!(e.is_intact(), "entry {} is intact", e.seq);
        prev = e.hash;
        prev_seq = e.seq;
    }
}

/// Two nodes (two stores on one database) appending from spawned tasks still build one
/// unbroken audit chain with consecutive seqs.
pub async fn audit_chain_holds_across_two_nodes(
    first: std::sync::Arc<dyn Store>,
    second: std::sync::Arc<dyn Store>,
) {
    let before = audit_tip(&*first).await.0;
    let mut tasks = Vec::new();
    for w in 0..16u16 {
        let store = if w % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..5 {
                let event = AuditEvent {
                    at_ms: 1_700_000_000_000 + i,
                    actor: format!("node-writer-{w}"),
                    source_ip: None,
                    action: "concurrent".into(),
                    project_id: None,
                    target: None,
                    status: Some(w),
                    details: "{}".into(),
                };
                seqs.push(store.append_audit(&event).await.unwrap().seq);
            }
            seqs
        }));
    }
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.extend(task.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (before + 1..=before + 80).collect::<Vec<i64>>());
    assert_audit_log_intact(&*first).await;
    assert_audit_log_intact(&*second).await;
}

/// The first audit entry has seq 1 and chains to [`AuditEntry::GENESIS`]; the second chains to
/// the first. Needs a store whose audit log is empty.
pub async fn audit_log_starts_at_genesis(store: &dyn Store) {
    let ns = Ns(37);
    assert_eq!(
        store
            .list_audit(&AuditFilter::default(), 0, 100)
            .await
            .unwrap(),
        [],
        "a fresh store has an empty audit log"
    );
    let e1 = audit_event(&ns.actor(0), "operator.bootstrap", None, T0 * 1000);
    let first = store.append_audit(&e1).await.unwrap();
    assert_eq!(first.seq, 1);
    assert_eq!(first.event, e1);
    assert_eq!(first.prev_hash, AuditEntry::GENESIS);
    assert_eq!(
        first.hash,
        AuditEntry::chain_hash(&AuditEntry::GENESIS, 1, &e1)
    );
    assert!(first.is_intact());

    let e2 = audit_event(&ns.actor(0), "operator.check", None, T0 * 1000 + 1);
    let second = store.append_audit(&e2).await.unwrap();
    assert_eq!(second.seq, 2);
    assert_eq!(second.prev_hash, first.hash);
    assert!(second.is_intact());
    assert_eq!(
        store
            .list_audit(&AuditFilter::default(), 0, 100)
            .await
            .unwrap(),
        [first, second]
    );
}

/// `append_audit` gives each entry the next seq and chains it to the previous entry; what it
/// returns is what `list_audit` reads back, and every entry verifies.
pub async fn audit_append_chains_entries(store: &dyn Store) {
    let ns = Ns(38);
    let (base, mut prev) = audit_tip(store).await;
    let p = ns.project(0);
    let events = [
        audit_event(&ns.actor(1), "POST /api/atlas/v2/groups", None, T0 * 1000),
        AuditEvent {
            source_ip: None,
            status: None,
            ..audit_event(&ns.actor(1), "certificate.issued", Some(&p), T0 * 1000)
        },
        AuditEvent {
            source_ip: Some("2001:db8::1".into()),
            target: Some("CN=ünïcode \"user\"".into()),
            status: Some(401),
            details: r#"{"reason":"bad digest","nested":{"list":[1,2,3]},"text":"✓"}"#.into(),
            ..audit_event(
                "anonymous",
                "authentication.failed",
                Some(&p),
                T0 * 1000 - 5,
            )
        },
        audit_event(
            &format!("service-account:{}", ns.client_id(1)),
            "DELETE /api/atlas/v2/groups/{groupId}/databaseUsers/{databaseName}/{username}",
            Some(&p),
            i64::MAX,
        ),
        AuditEvent {
            status: Some(u16::MAX),
            details: String::new(),
            ..audit_event(&ns.actor(1), "", None, 0)
        },
    ];
    let mut appended = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let got = store.append_audit(e).await.unwrap();
        let seq = base + 1 + i as i64;
        assert_eq!(got.seq, seq, "seqs are consecutive");
        assert_eq!(&got.event, e, "the event is stored as given");
        assert_eq!(got.prev_hash, prev, "entry {seq} chains to its predecessor");
        assert_eq!(got.hash, AuditEntry::chain_hash(&prev, seq, e));
        assert!(got.is_intact());
        prev = got.hash.clone();
        appended.push(got);
    }
    assert_eq!(
        store
            .list_audit(&AuditFilter::default(), base, 100)
            .await
            .unwrap(),
        appended,
        "read back exactly as appended"
    );
    assert_audit_log_intact(store).await;

    // Changing any part of an entry breaks it.
    let e = &appended[2];
    let mut forged = e.clone();
    forged.event.status = Some(200);
    assert!(!forged.is_intact(), "edited event");
    let mut forged = e.clone();
    forged.seq += 1;
    assert!(!forged.is_intact(), "moved entry");
    let mut forged = e.clone();
    forged.prev_hash = appended[0].hash.clone();
    assert!(!forged.is_intact(), "re-chained entry");
}

/// `list_audit` filters by project, actor and time (`since` inclusive, `until` exclusive),
/// returns entries after `after_seq` in log order, and at most `limit` of them.
pub async fn list_audit_filters(store: &dyn Store) {
    let ns = Ns(39);
    let (base, _) = audit_tip(store).await;
    // Projects the log outlives: they need not exist.
    let (p, q) = (ns.project(0), ns.project(1));
    let (a, b) = (ns.actor(1), ns.actor(2));
    let t = (T0 + 39_000) * 1000;
    let events = [
        audit_event(&a, "zero", Some(&p), t),
        audit_event(&b, "one", Some(&p), t + 10),
        audit_event(&a, "two", Some(&q), t + 20),
        audit_event(&a, "three", None, t + 20),
        audit_event(&b, "four", Some(&q), t + 30),
        audit_event(&a, "five", Some(&p), t + 40),
    ];
    let mut appended = Vec::new();
    for e in &events {
        appended.push(store.append_audit(e).await.unwrap());
    }
    // Which of this check's entries a listing returns, by index into `events`.
    let appended = &appended;
    let list = move |filter: AuditFilter, after: i64, limit: u32| async move {
        let got = store.list_audit(&filter, after, limit).await.unwrap();
        got.iter()
            .map(|e| {
                let i = usize::try_from(e.seq - base - 1).expect("an entry of this check");
                assert_eq!(e, &appended[i], "listed entries are complete");
                i
            })
            .collect::<Vec<_>>()
    };
    const NOTHING: [usize; 0] = [];
    let all = AuditFilter::default();
    let project = |id: &str| AuditFilter {
        project_id: Some(id.to_owned()),
        ..AuditFilter::default()
    };
    let actor = |id: &str| AuditFilter {
        actor: Some(id.to_owned()),
        ..AuditFilter::default()
    };
    let window = |since: Option<i64>, until: Option<i64>| AuditFilter {
        since_ms: since,
        until_ms: until,
        ..AuditFilter::default()
    };

    assert_eq!(list(all.clone(), base, 100).await, [0, 1, 2, 3, 4, 5]);
    assert_eq!(list(project(&p), base, 100).await, [0, 1, 5]);
    assert_eq!(list(project(&q), base, 100).await, [2, 4]);
    assert_eq!(list(project(&ns.project(99)), 0, 100).await, NOTHING);
    assert_eq!(list(actor(&a), base, 100).await, [0, 2, 3, 5]);
    assert_eq!(list(actor(&b), base, 100).await, [1, 4]);
    assert_eq!(
        list(actor(&a[..a.len() - 1]), 0, 100).await,
        NOTHING,
        "actors match exactly"
    );
    // Project and actor filters need no `after_seq` to single out this check's entries.
    assert_eq!(list(project(&p), 0, 100).await, [0, 1, 5]);
    assert_eq!(list(actor(&b), 0, 100).await, [1, 4]);
    assert_eq!(
        list(
            AuditFilter {
                project_id: Some(p.clone()),
                actor: Some(a.clone()),
                ..AuditFilter::default()
            },
            0,
            100
        )
        .await,
        [0, 5]
    );

    // Time windows: since inclusive, until exclusive.
    assert_eq!(
        list(window(Some(t + 20), None), base, 100).await,
        [2, 3, 4, 5]
    );
    assert_eq!(list(window(None, Some(t + 20)), base, 100).await, [0, 1]);
    assert_eq!(
        list(window(Some(t + 10), Some(t + 30)), base, 100).await,
        [1, 2, 3]
    );
    assert_eq!(
        list(window(Some(t + 20), Some(t + 20)), base, 100).await,
        NOTHING
    );
    assert_eq!(list(window(Some(t + 41), None), base, 100).await, NOTHING);
    assert_eq!(
        list(
            AuditFilter {
                actor: Some(a.clone()),
                since_ms: Some(t + 20),
                ..AuditFilter::default()
            },
            0,
            100
        )
        .await,
        [2, 3, 5]
    );
    assert_eq!(
        list(
            AuditFilter {
                project_id: Some(q.clone()),
                actor: Some(b.clone()),
                since_ms: Some(t),
                until_ms: Some(t + 31),
            },
            0,
            100
        )
        .await,
        [4]
    );

    // after_seq and limit.
    assert_eq!(list(all.clone(), base + 2, 100).await, [2, 3, 4, 5]);
    assert_eq!(list(all.clone(), base + 6, 100).await, NOTHING);
    assert_eq!(list(all.clone(), base, 2).await, [0, 1]);
    assert_eq!(list(all.clone(), base + 1, 2).await, [1, 2]);
    assert_eq!(list(all.clone(), base, 0).await, NOTHING);
    assert_eq!(list(actor(&a), base + 1, 2).await, [2, 3]);

    // Paging through one project, one entry at a time, as `dbcerts audit` does.
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let page = list(project(&p), after, 1).await;
        let Some(&i) = page.first() else { break };
        seen.push(i);
        after = appended[i].seq;
    }
    assert_eq!(seen, [0, 1, 5]);
}

/// Concurrent appends (16 writers × 5 entries) take unique, consecutive seqs and build one
/// unbroken chain.
pub async fn audit_concurrent_appends_keep_the_chain(store: &dyn Store) {
    let ns = Ns(41);
    let (base, tip) = audit_tip(store).await;
    let writers = (0..16u64).map(move |w| async move {
        let mut got = Vec::new();
        for i in 0..5 {
            let e = audit_event(&ns.actor(w), "concurrent", None, T0 * 1000 + i);
            let entry = store.append_audit(&e).await.expect("append_audit");
            assert_eq!(entry.event, e);
            got.push(entry);
        }
        got
    });
    let results = futures_join_all(writers).await;

    for got in &results {
        assert!(
            got.windows(2).all(|w| w[0].seq < w[1].seq),
            "one writer's entries are in its order"
        );
    }
    let mut returned: Vec<AuditEntry> = results.into_iter().flatten().collect();
    returned.sort_by_key(|e| e.seq);
    assert_eq!(
        returned.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (base + 1..=base + 80).collect::<Vec<_>>(),
        "unique, consecutive seqs"
    );
    let listed = store
        .list_audit(&AuditFilter::default(), base, 1000)
        .await
        .unwrap();
    assert_eq!(listed, returned, "what appends returned is what is stored");
    let mut prev = tip;
    for e in &listed {
        assert_eq!(
            e.prev_hash, prev,
            "entry {} chains to its predecessor",
            e.seq
        );
        assert!(e.is_intact(), "entry {} is intact", e.seq);
        prev = e.hash.clone();
    }
    assert_audit_log_intact(store).await;
}
