//! Conformance checks of the audit log: genesis, the hash chain (also across two nodes and
//! under concurrent appends) and its filters.

use super::*;

/// Asserts that the audit log is unbroken: seqs 1, 2, 3, ... (no append here rolls back), and
/// each chain (an event's project's, or the store chain) numbered 1, 2, 3, ... in it, its first
/// entry chained to the chain's genesis, every other one to the chain's previous entry, every
/// one intact; and that `verify_audit_chains` finds the same.
pub async fn assert_audit_log_intact(store: &dyn Store) {
    // chain -> (chain_seq, seq, hash) of its last entry
    let mut tips: std::collections::BTreeMap<String, (i64, i64, Vec<u8>)> = Default::default();
    let mut prev_seq = 0;
    let log = audit_log(store).await;
    for e in &log {
        assert_eq!(e.seq, prev_seq + 1, "audit seqs are consecutive");
        assert_eq!(
            e.chain,
            AuditEntry::chain_of(&e.event),
            "entry {} is in its project's chain",
            e.seq
        );
        let (chain_seq, seq, hash) = tips
            .entry(e.chain.clone())
            .or_insert_with(|| (0, 0, AuditEntry::genesis(&e.chain)));
        assert_eq!(
            e.chain_seq,
            *chain_seq + 1,
            "entry {} is next in its chain",
            e.seq
        );
        assert_eq!(
            e.prev_seq, *seq,
            "entry {} names its chain's previous entry",
            e.seq
        );
        assert_eq!(
            &e.prev_hash, hash,
            "entry {} chains to its predecessor",
            e.seq
        );
        assert!(e.is_intact(), "entry {} is intact", e.seq);
        *tips.get_mut(&e.chain).unwrap() = (e.chain_seq, e.seq, e.hash.clone());
        prev_seq = e.seq;
    }
    let heads: Vec<(String, i64, i64, Vec<u8>)> = store
        .audit_chain_heads()
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.chain, h.chain_seq, h.seq, h.hash))
        .collect();
    let expected: Vec<(String, i64, i64, Vec<u8>)> = tips
        .iter()
        .map(|(chain, (chain_seq, seq, hash))| (chain.clone(), *chain_seq, *seq, hash.clone()))
        .collect();
    assert_eq!(
        heads, expected,
        "each chain's recorded head is its last entry"
    );
    let chains = tips
        .iter()
        .map(|(chain, (entries, last_seq, hash))| ChainSummary {
            chain: chain.clone(),
            entries: *entries as u64,
            last_seq: *last_seq,
            last_hash: hash.clone(),
        })
        .collect();
    let checkpoint = log
        .iter()
        .rfind(|e| e.chain.is_empty() && e.event.action == AuditEntry::CHECKPOINT)
        .map(|e| e.seq);
    assert_eq!(
        verify_audit_chains(store).await.unwrap(),
        ChainCheck::Intact {
            entries: log.len() as u64,
            chains,
            checkpoint,
        },
        "verify_audit_chains agrees"
    );
}

/// Two nodes (two stores on one database) appending from spawned tasks still build one
/// unbroken store chain with consecutive seqs.
pub async fn audit_chain_holds_across_two_nodes(
    first: std::sync::Arc<dyn Store>,
    second: std::sync::Arc<dyn Store>,
) {
    let before = audit_tip(&*first, "").await.0;
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
    assert_eq!(
        (first.chain.as_str(), first.chain_seq, first.prev_seq),
        ("", 1, 0)
    );
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
    assert_eq!((second.chain_seq, second.prev_seq), (2, 1));
    assert_eq!(second.prev_hash, first.hash);
    assert!(second.is_intact());

    // A project's first entry starts the project's own chain, from a genesis of its own.
    let p = ns.project(0);
    let e3 = audit_event(&ns.actor(0), "certificate.issued", Some(&p), T0 * 1000 + 2);
    let third = store.append_audit(&e3).await.unwrap();
    assert_eq!(third.seq, 3);
    assert_eq!(
        (third.chain.as_str(), third.chain_seq, third.prev_seq),
        (p.as_str(), 1, 0)
    );
    assert_eq!(third.prev_hash, AuditEntry::genesis(&p));
    assert_ne!(AuditEntry::genesis(&p), AuditEntry::GENESIS.to_vec());
    assert_eq!(
        third.hash,
        AuditEntry::chain_hash(&AuditEntry::genesis(&p), 1, &e3)
    );
    assert!(third.is_intact());
    assert_eq!(
        store
            .list_audit(&AuditFilter::default(), 0, 100)
            .await
            .unwrap(),
        [first, second, third]
    );
}

/// `append_audit` gives each entry the next seq and chains it to the previous entry; what it
/// returns is what `list_audit` reads back, and every entry verifies.
pub async fn audit_append_chains_entries(store: &dyn Store) {
    let ns = Ns(38);
    let p = ns.project(0);
    let (base, _) = audit_tip(store, "").await;
    // chain -> (chain_seq, seq, hash) of its last entry
    let mut tips = std::collections::HashMap::from([
        ("".to_owned(), chain_tip(store, "").await),
        (p.clone(), chain_tip(store, &p).await),
    ]);
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
        assert_eq!(
            got.chain,
            AuditEntry::chain_of(e),
            "entry {seq} is in its project's chain"
        );
        let (chain_seq, prev_seq, prev) = tips.get_mut(&got.chain).unwrap();
        assert_eq!(
            got.chain_seq,
            *chain_seq + 1,
            "entry {seq} is next in its chain"
        );
        assert_eq!(
            got.prev_seq, *prev_seq,
            "entry {seq} names its chain's previous entry"
        );
        assert_eq!(
            &got.prev_hash, prev,
            "entry {seq} chains to its predecessor"
        );
        assert_eq!(got.hash, AuditEntry::chain_hash(prev, got.chain_seq, e));
        assert!(got.is_intact());
        (*chain_seq, *prev_seq, *prev) = (got.chain_seq, seq, got.hash.clone());
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
    forged.chain_seq += 1;
    assert!(!forged.is_intact(), "moved entry");
    let mut forged = e.clone();
    forged.prev_hash = appended[0].hash.clone();
    assert!(!forged.is_intact(), "re-chained entry");
}

/// `list_audit` filters by project, actor and time (`since` inclusive, `until` exclusive),
/// returns entries after `after_seq` in log order, and at most `limit` of them.
pub async fn list_audit_filters(store: &dyn Store) {
    let ns = Ns(39);
    let (base, _) = audit_tip(store, "").await;
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
                chain: None,
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
    let (base, tip) = audit_tip(store, "").await;
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

/// The last entry of `chain` as `(chain_seq, seq, hash)`; `(0, 0, genesis)` for an empty chain.
pub(crate) async fn chain_tip(store: &dyn Store, chain: &str) -> (i64, i64, Vec<u8>) {
    audit_log(store)
        .await
        .into_iter()
        .rfind(|e| e.chain == chain)
        .map_or_else(
            || (0, 0, AuditEntry::genesis(chain)),
            |e| (e.chain_seq, e.seq, e.hash),
        )
}

/// Writer `w`'s five entries ("concurrent", into `project`'s chain), appended one after another;
/// each is stored as given.
pub(crate) async fn append_five(
    store: &dyn Store,
    ns: Ns,
    w: u64,
    project: Option<&str>,
) -> Vec<AuditEntry> {
    let mut entries = Vec::new();
    for i in 0..5 {
        let e = audit_event(&ns.actor(w), "concurrent", project, T0 * 1000 + i);
        let entry = store.append_audit(&e).await.expect("append_audit");
        assert_eq!(entry.event, e);
        entries.push(entry);
    }
    entries
}

/// Each project's entries form a chain of their own and entries with no project the store
/// chain, whatever the order they come in (one at a time, concurrently, or in one batch): each
/// chain numbered from 1 and linked from its own genesis, listed alone by
/// [`AuditFilter::chain`], and reported by [`verify_audit_chains`].
pub async fn audit_chains_are_separate(store: &dyn Store) {
    let ns = Ns(74);
    let (p, q) = (
        setup_project(store, ns, 0).await,
        setup_project(store, ns, 1).await,
    );
    let before = chain_tip(store, "").await;
    // Interleaved one at a time, then concurrently (16 writers over the three chains).
    for i in 0..6u64 {
        let project = [Some(p.as_str()), Some(q.as_str()), None][i as usize % 3];
        let e = audit_event(&ns.actor(i), "interleaved", project, T0 * 1000 + i as i64);
        store.append_audit(&e).await.unwrap();
    }
    let writers = (0..16u64).map(|w| {
        let (p, q) = (p.clone(), q.clone());
        async move {
            let project = [Some(p), Some(q), None][w as usize % 3].clone();
            for entry in append_five(store, ns, w, project.as_deref()).await {
                assert_eq!(entry.chain, project.clone().unwrap_or_default());
            }
        }
    });
    futures_join_all(writers).await;
    // One batch with certificates of both projects and an entry of neither.
    let (a, b) = (
        cert(ns.serial(1), &p, "CN=una", T0, T0 + 1000),
        cert(ns.serial(2), &q, "CN=una", T0, T0 + 1000),
    );
    managed_user(store, &p, "CN=una").await;
    managed_user(store, &q, "CN=una").await;
    let batch = [
        BatchWrite::Certificate(a.clone(), issued(&a)),
        BatchWrite::Audit(audit_event(&ns.actor(99), "batched", None, T0 * 1000)),
        BatchWrite::Certificate(b.clone(), issued(&b)),
    ];
    assert_eq!(
        store.commit_batch(&batch).await.unwrap(),
        [Recorded::Yes; 3]
    );

    // 6 interleaved (2 each), 16 writers × 5 (p: 6 writers, q: 5, store: 5), 1 batched each.
    for (chain, entries) in [(p.as_str(), 2 + 30 + 1), (q.as_str(), 2 + 25 + 1)] {
        let filter = AuditFilter {
            chain: Some(chain.to_owned()),
            ..AuditFilter::default()
        };
        let listed = store.list_audit(&filter, 0, 1000).await.unwrap();
        assert_eq!(
            listed.iter().map(|e| e.chain_seq).collect::<Vec<_>>(),
            (1..=entries).collect::<Vec<_>>(),
            "chain {chain} alone, numbered from 1 in log order"
        );
        assert!(
            listed
                .iter()
                .all(|e| e.chain == chain && e.event.project_id.as_deref() == Some(chain))
        );
        assert_eq!(listed[0].prev_hash, AuditEntry::genesis(chain));
        assert!(
            listed
                .windows(2)
                .all(|w| w[1].prev_hash == w[0].hash && w[1].prev_seq == w[0].seq)
        );
    }
    let store_chain = store
        .list_audit(
            &AuditFilter {
                chain: Some(String::new()),
                ..AuditFilter::default()
            },
            before.1,
            1000,
        )
        .await
        .unwrap();
    assert_eq!(
        store_chain.iter().map(|e| e.chain_seq).collect::<Vec<_>>(),
        (before.0 + 1..=before.0 + 2 + 25 + 1).collect::<Vec<_>>(),
        "the store chain goes on from where it was"
    );
    assert_audit_log_intact(store).await;
    let ChainCheck::Intact { chains, .. } = verify_audit_chains(store).await.unwrap() else {
        panic!("the chains verify");
    };
    let count = |c: &str| chains.iter().find(|s| s.chain == c).map(|s| s.entries);
    assert_eq!((count(&p), count(&q)), (Some(33), Some(28)));
    assert_eq!(chains[0].chain, "", "the store chain is reported first");
}

/// Two nodes appending to several chains at once (16 tasks over four projects' chains and the
/// store chain) leave every chain unbroken, with unique seqs.
pub async fn audit_chains_hold_across_two_nodes(
    first: std::sync::Arc<dyn Store>,
    second: std::sync::Arc<dyn Store>,
) {
    let ns = Ns(75);
    let (before, _) = audit_tip(&*first, "").await;
    let mut tasks = Vec::new();
    for w in 0..16u64 {
        let store = if w % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let project = (w % 5 != 4).then(|| ns.project(w % 5));
        tasks.push(tokio::spawn(async move {
            let entries = append_five(&*store, ns, w, project.as_deref()).await;
            entries.into_iter().map(|e| e.seq).collect::<Vec<_>>()
        }));
    }
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.extend(task.await.unwrap());
    }
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 80, "unique seqs");
    assert!(seqs[0] > before);
    for n in 0..4 {
        let chain = ns.project(n);
        let filter = AuditFilter {
            chain: Some(chain.clone()),
            ..AuditFilter::default()
        };
        let listed = first.list_audit(&filter, 0, 1000).await.unwrap();
        // Projects 0..3 have writers w ≡ n (mod 5): 4 of them for n = 0, 3 for the others.
        let writers = (0..16).filter(|w| w % 5 == n).count() as i64;
        assert_eq!(listed.len() as i64, writers * 5, "chain {chain}");
    }
    assert_audit_log_intact(&*first).await;
    assert_audit_log_intact(&*second).await;
}

/// Builds three chains, then edits and deletes entries through
/// `sql(statement, seq, text)` (the backend's own connection: `$1` is the entry's `seq`, `$2`
/// the text when given; a `SELECT` returns its one text column): [`verify_audit_chains`] names
/// the entry and its chain each time, and finds the log intact again once the edit is undone.
pub async fn audit_tampering_is_detected<F, Fut>(store: &dyn Store, sql: F)
where
    F: Fn(&'static str, i64, Option<String>) -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let ns = Ns(76);
    let (p, q) = (ns.project(0), ns.project(1));
    let mut victim = None;
    for i in 0..9u64 {
        let project = [Some(p.as_str()), Some(q.as_str()), None][i as usize % 3];
        let e = audit_event(
            &ns.actor(i),
            "to-be-tampered",
            project,
            T0 * 1000 + i as i64,
        );
        let entry = store.append_audit(&e).await.unwrap();
        if i == 3 {
            victim = Some(entry);
        }
    }
    let victim = victim.unwrap();
    assert_eq!((victim.chain.as_str(), victim.chain_seq), (p.as_str(), 2));
    assert_audit_log_intact(store).await;

    let original = sql(
        "SELECT details FROM audit_log WHERE seq = $1",
        victim.seq,
        None,
    )
    .await;
    assert_eq!(original.as_deref(), Some("{}"));
    let edit = "UPDATE audit_log SET details = $2 WHERE seq = $1 RETURNING details";
    sql(edit, victim.seq, Some(r#"{"forged":true}"#.into()))
        .await
        .unwrap();
    assert_audit_broken_at(store, victim.seq, &p, "contents").await;
    sql(edit, victim.seq, original).await.unwrap();
    assert_audit_log_intact(store).await;
    // Cutting off a chain's newest entry (the store chain's, which a later entry of another
    // chain follows in the log) is found through the chain's recorded head.
    let newest = audit_log(store)
        .await
        .into_iter()
        .rfind(|e| e.chain.is_empty())
        .unwrap();
    let after = audit_event(&ns.actor(9), "after", Some(&ns.project(2)), T0 * 1000);
    store.append_audit(&after).await.unwrap();
    let delete = "DELETE FROM audit_log WHERE seq = $1 RETURNING details";
    sql(delete, newest.seq, None).await.unwrap();
    assert_audit_broken_at(store, newest.seq, "", "missing").await;
    // Deleting an entry inside a chain is found by the gap it leaves.
    sql(delete, victim.seq, None).await.unwrap();
    assert_audit_broken_at(store, victim.seq, &p, "missing").await;
}

/// Cutting a chain's newest entries off stays found after the chain's next append (finding 2
/// of review 26): the append goes on from the recorded head, after an `audit.chain.mismatch`
/// entry saying what it found, so the cut is a gap that verification names, rather than being
/// overwritten by new entries that reuse the deleted numbers. `sql` as for
/// [`audit_tampering_is_detected`].
pub async fn audit_truncation_survives_later_appends<F, Fut>(store: &dyn Store, sql: F)
where
    F: Fn(&'static str, i64, Option<String>) -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let ns = Ns(77);
    let (p, q) = (ns.project(0), ns.project(1));
    let entries = interleave(store, ns, &[Some(&p), Some(&q)], 8).await;
    // P's entries are 0, 2, 4, 6: cut off its newest two (chain_seq 3 and 4).
    for victim in [&entries[6], &entries[4]] {
        sql(DELETE_ENTRY, victim.seq, None).await.unwrap();
    }
    assert_audit_broken_at(store, entries[6].seq, &p, "missing").await;
    let e = audit_event(&ns.actor(9), "after-the-cut", Some(&p), T0 * 1000 + 1);
    let next = store.append_audit(&e).await.unwrap();
    assert_eq!(
        (next.chain_seq, next.event.action.as_str()),
        (6, "after-the-cut"),
        "the append goes on from the recorded head (4), after a mismatch entry (5)"
    );
    let (note, details) = entry_before_last(store, &p).await;
    assert_eq!(
        (note.chain_seq, note.prev_seq, note.event.action.as_str()),
        (5, entries[6].seq, AuditEntry::CHAIN_MISMATCH)
    );
    assert_eq!(note.event.actor, "dbcerts");
    assert_eq!(details["chainedOnto"], "recordedHead");
    assert_eq!(details["recordedHead"]["chainSeq"], 4);
    assert_eq!(details["lastEntry"]["chainSeq"], 2);
    // The gap stays: the deleted entries' numbers are not reused.
    assert_audit_broken_at(store, entries[6].seq, &p, "missing").await;
    let e = audit_event(&ns.actor(9), "later", Some(&p), T0 * 1000 + 2);
    assert_eq!(store.append_audit(&e).await.unwrap().chain_seq, 7);
    assert_audit_broken_at(store, entries[6].seq, &p, "missing").await;
}

/// The same cut, found by a group commit ([`Store::commit_batch`]) that appends to the cut chain
/// twice around another chain's entry: the mismatch entry comes just before the chain's first
/// new entry, `seq`s follow the batch's order, each entry's `prev_seq` is its chain's previous
/// entry, and the saved head is where the next append goes on. `sql` as for
/// [`audit_tampering_is_detected`].
pub async fn audit_truncation_survives_a_group_commit<F, Fut>(store: &dyn Store, sql: F)
where
    F: Fn(&'static str, i64, Option<String>) -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let ns = Ns(78);
    let (p, q) = (ns.project(0), ns.project(1));
    let entries = interleave(store, ns, &[Some(&p), Some(&q)], 8).await;
    for victim in [&entries[6], &entries[4]] {
        sql(DELETE_ENTRY, victim.seq, None).await.unwrap();
    }
    let at = T0 * 1000 + 1;
    let batch = [
        BatchWrite::Audit(audit_event(&ns.actor(9), "first", Some(&p), at)),
        BatchWrite::Audit(audit_event(&ns.actor(9), "other", Some(&q), at)),
        BatchWrite::Audit(audit_event(&ns.actor(9), "second", Some(&p), at)),
    ];
    assert_eq!(
        store.commit_batch(&batch).await.unwrap(),
        vec![Recorded::Yes; 3]
    );
    let listed = store
        .list_audit(&AuditFilter::default(), entries[7].seq, 100)
        .await
        .unwrap();
    let got: Vec<(&str, &str, i64)> = listed
        .iter()
        .map(|e| (e.chain.as_str(), e.event.action.as_str(), e.chain_seq))
        .collect();
    assert_eq!(
        got,
        vec![
            (p.as_str(), AuditEntry::CHAIN_MISMATCH, 5),
            (p.as_str(), "first", 6),
            (q.as_str(), "other", 5),
            (p.as_str(), "second", 7),
        ],
        "in batch order, the mismatch entry just before the cut chain's first new entry"
    );
    assert!(listed.windows(2).all(|w| w[0].seq < w[1].seq));
    let prev: Vec<i64> = listed.iter().map(|e| e.prev_seq).collect();
    assert_eq!(
        prev,
        vec![entries[6].seq, listed[0].seq, entries[7].seq, listed[1].seq],
        "each entry's prev_seq is its chain's previous entry (the recorded head for the first)"
    );
    let heads = store.audit_chain_heads().await.unwrap();
    for (chain, last) in [(&p, &listed[3]), (&q, &listed[2])] {
        let head = heads.iter().find(|h| &h.chain == chain).unwrap();
        assert_eq!(
            (head.chain_seq, head.seq, &head.hash),
            (last.chain_seq, last.seq, &last.hash)
        );
    }
    // Only the cut is broken: the batch's entries chain by hash.
    assert_audit_broken_at(store, entries[6].seq, &p, "missing").await;
    let e = audit_event(&ns.actor(9), "later", Some(&p), at + 1);
    assert_eq!(store.append_audit(&e).await.unwrap().chain_seq, 8);
    assert_audit_broken_at(store, entries[6].seq, &p, "missing").await;
}

/// Deletes the audit entry whose `seq` is `$1`.
const DELETE_ENTRY: &str = "DELETE FROM audit_log WHERE seq = $1 RETURNING details";

/// Deletes the recorded head of the chain of the entry whose `seq` is `$1`.
const FORGET_HEAD: &str = "DELETE FROM audit_chain_heads
                           WHERE chain = (SELECT chain FROM audit_log WHERE seq = $1) RETURNING chain";

/// Appends `n` entries, the i-th to chain `chains[i % chains.len()]` (a project, or the store
/// chain), and checks that the log is intact.
async fn interleave(store: &dyn Store, ns: Ns, chains: &[Option<&str>], n: u64) -> Vec<AuditEntry> {
    let mut entries = Vec::new();
    for i in 0..n {
        let project = chains[i as usize % chains.len()];
        let e = audit_event(&ns.actor(i), "interleaved", project, T0 * 1000);
        entries.push(store.append_audit(&e).await.unwrap());
    }
    assert_audit_log_intact(store).await;
    entries
}

/// The entry before the last of `chain`, and its details.
async fn entry_before_last(store: &dyn Store, chain: &str) -> (AuditEntry, serde_json::Value) {
    let filter = AuditFilter {
        chain: Some(chain.to_owned()),
        ..AuditFilter::default()
    };
    let mut listed = store.list_audit(&filter, 0, 1000).await.unwrap();
    listed.pop();
    let entry = listed.pop().expect("two entries");
    let details = serde_json::from_str(&entry.event.details).unwrap();
    (entry, details)
}

/// A chain whose head row is deleted is found by its missing head; when its newest entry is
/// deleted too and the chain is appended to, the append goes on from the log's last entry (there
/// is nothing else), after an `audit.chain.mismatch` entry, which verification reports. `sql`
/// as for [`audit_tampering_is_detected`].
pub async fn audit_lost_head_is_found<F, Fut>(store: &dyn Store, sql: F)
where
    F: Fn(&'static str, i64, Option<String>) -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let ns = Ns(79);
    let (p, q) = (ns.project(0), ns.project(1));
    let entries = interleave(store, ns, &[Some(&p), Some(&q)], 8).await;
    // Q's entries are 1, 3, 5, 7.
    assert_eq!(
        sql(FORGET_HEAD, entries[7].seq, None).await,
        Some(q.clone())
    );
    assert_audit_broken_at(store, entries[7].seq, &q, "no recorded head").await;
    sql(DELETE_ENTRY, entries[7].seq, None).await.unwrap();
    let e = audit_event(&ns.actor(9), "after-the-head", Some(&q), T0 * 1000 + 3);
    let next = store.append_audit(&e).await.unwrap();
    assert_eq!(
        next.chain_seq, 5,
        "without a recorded head the append goes on from the log's last entry (3), after a \
         mismatch entry (4)"
    );
    let (note, details) = entry_before_last(store, &q).await;
    assert_eq!(
        (note.chain_seq, note.event.action.as_str()),
        (4, AuditEntry::CHAIN_MISMATCH)
    );
    assert_eq!(details["chainedOnto"], "lastEntry");
    assert_eq!(details["recordedHead"], serde_json::Value::Null);
    assert_eq!(details["lastEntry"]["seq"], entries[5].seq);
    assert_audit_broken_at(store, note.seq, &q, "differing").await;
    // P, untouched, still appends without a mismatch entry.
    let e = audit_event(&ns.actor(9), "untouched", Some(&p), T0 * 1000 + 4);
    assert_eq!(store.append_audit(&e).await.unwrap().chain_seq, 5);
}

/// Deleting a whole project chain together with its recorded head leaves nothing in the log to
/// find; a checkpoint ([`checkpoint_event`], what `dbcerts audit verify --checkpoint` appends to
/// the store chain) recorded where the chain ended, so verification finds it gone, and also
/// finds a chain cut back below the checkpoint with its head moved back to match.
pub async fn audit_deleted_chain_is_found_by_checkpoint<F, Fut>(store: &dyn Store, sql: F)
where
    F: Fn(&'static str, i64, Option<String>) -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let ns = Ns(78);
    let (p, q) = (ns.project(0), ns.project(1));
    let entries = interleave(store, ns, &[Some(&p), Some(&q), None], 9).await;
    let ChainCheck::Intact {
        chains,
        checkpoint: None,
        ..
    } = verify_audit_chains(store).await.unwrap()
    else {
        panic!("the log is not intact, or has a checkpoint already");
    };
    let cp = store
        .append_audit(&checkpoint_event(&chains, T0 * 1000 + 1, "operator"))
        .await
        .unwrap();
    assert_eq!(
        (cp.chain.as_str(), cp.event.action.as_str()),
        ("", AuditEntry::CHECKPOINT)
    );
    let recorded: Checkpoint = serde_json::from_str(&cp.event.details).unwrap();
    assert_eq!(recorded.root, AuditEntry::hex(&root_digest(&chains)));
    let p_end = recorded
        .chains
        .iter()
        .find(|c| c.chain == p)
        .unwrap()
        .clone();
    assert_eq!((p_end.chain_seq, p_end.seq), (3, entries[6].seq));
    // Later appends (to P and another chain) are fine.
    for (i, project) in [Some(p.as_str()), Some(q.as_str()), None]
        .into_iter()
        .enumerate()
    {
        let e = audit_event(&ns.actor(20), "after", project, T0 * 1000 + 2 + i as i64);
        store.append_audit(&e).await.unwrap();
    }
    match verify_audit_chains(store).await.unwrap() {
        ChainCheck::Intact { checkpoint, .. } => assert_eq!(checkpoint, Some(cp.seq)),
        broken => panic!("{broken:?}"),
    }
    assert_audit_log_intact(store).await;

    // Cut P back to two entries and move its head back to match: every remaining entry still
    // links, and the head agrees, but the checkpoint recorded three.
    sql(
        "DELETE FROM audit_log WHERE chain = (SELECT chain FROM audit_log WHERE seq = $1)
           AND chain_seq > 2 RETURNING details",
        entries[0].seq,
        None,
    )
    .await
    .unwrap();
    sql(
        "UPDATE audit_chain_heads SET chain_seq = 2,
             seq = (SELECT l.seq FROM audit_log l
                    WHERE l.chain = audit_chain_heads.chain AND l.chain_seq = 2),
             hash = (SELECT l.hash FROM audit_log l
                     WHERE l.chain = audit_chain_heads.chain AND l.chain_seq = 2)
         WHERE chain = (SELECT chain FROM audit_log WHERE seq = $1) RETURNING chain",
        entries[0].seq,
        None,
    )
    .await
    .unwrap();
    assert_audit_broken_at(store, p_end.seq, &p, "checkpoint").await;
    // Now delete the whole chain and its head.
    assert_eq!(
        sql(FORGET_HEAD, entries[0].seq, None).await,
        Some(p.clone())
    );
    sql(
        "DELETE FROM audit_log WHERE chain = (SELECT chain FROM audit_log WHERE seq = $1)
         RETURNING details",
        entries[0].seq,
        None,
    )
    .await
    .unwrap();
    assert!(
        audit_log(store).await.iter().all(|e| e.chain != p),
        "P's chain is gone"
    );
    assert_audit_broken_at(store, p_end.seq, &p, "checkpoint").await;
}

/// Asserts that [`verify_audit_chains`] reports entry `seq` of `chain` as broken, for `reason`.
pub(crate) async fn assert_audit_broken_at(store: &dyn Store, seq: i64, chain: &str, reason: &str) {
    match verify_audit_chains(store).await.unwrap() {
        ChainCheck::Broken {
            seq: at,
            chain: c,
            reason: why,
        } => {
            assert_eq!((at, c.as_str()), (seq, chain), "{why}");
            assert!(why.contains(reason), "{why}");
        }
        intact => panic!("tampering not detected: {intact:?}"),
    }
}
