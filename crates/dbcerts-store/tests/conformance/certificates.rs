//! Conformance checks of certificates: unique serials, the unexpired list, the expiry counts,
//! their audit entries, and `commit_batch`.

use super::*;

/// `expiring_certificates` counts unexpired certificates per project by expiry horizon: the
/// nearer count within the farther one, expired and far-off certificates in neither, projects
/// with nothing expiring absent, in project-id order.
pub async fn expiring_certificates_counts_per_project(store: &dyn Store) {
    let ns = Ns(44);
    let (p1, p2, quiet) = (
        setup_project(store, ns, 1).await,
        setup_project(store, ns, 2).await,
        setup_project(store, ns, 3).await,
    );
    // "now" far in the future of every other check's certificates, so they do not count.
    let now = 4_000_000_000;
    let (soon, later) = (now + 7 * 86_400, now + 30 * 86_400);
    let expiries: [(&str, i64); 9] = [
        (&p1, now),               // expired at `now` exactly: not counted
        (&p1, now + 1),           // soon
        (&p1, soon),              // soon (inclusive)
        (&p1, soon + 1),          // later only
        (&p1, later),             // later (inclusive)
        (&p1, later + 1),         // beyond both
        (&p2, now + 3 * 86_400),  // soon
        (&p2, now - 86_400),      // expired
        (&quiet, later + 86_400), // beyond both
    ];
    for (i, (project, not_after)) in expiries.iter().enumerate() {
        let c = cert(
            ns.serial(i as i64 + 1),
            project,
            "CN=exp",
            now - 86_400,
            *not_after,
        );
        insert_cert(store, &c).await.unwrap();
    }
    let counts = store.expiring_certificates(now, soon, later).await.unwrap();
    let ours: Vec<&ExpiringCount> = counts
        .iter()
        .filter(|c| [&p1, &p2, &quiet].contains(&&c.project_id))
        .collect();
    let mut expected = [
        ExpiringCount {
            project_id: p1.clone(),
            within_soon: 2,
            within_later: 4,
        },
        ExpiringCount {
            project_id: p2.clone(),
            within_soon: 1,
            within_later: 1,
        },
    ];
    expected.sort_by(|a, b| a.project_id.cmp(&b.project_id));
    assert_eq!(ours, expected.iter().collect::<Vec<_>>());
    let ids: Vec<&String> = counts.iter().map(|c| &c.project_id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "project-id order");
    // Deleting a project takes its certificates out of the counts.
    store.delete_project(&p2).await.unwrap();
    let counts = store.expiring_certificates(now, soon, later).await.unwrap();
    assert!(counts.iter().all(|c| c.project_id != p2));
}

/// A serial is stored once; a second certificate with the same serial is refused and the first
/// one is left as it was.
pub async fn certificate_serial_unique(store: &dyn Store) {
    let ns = Ns(17);
    let p = setup_project(store, ns, 0).await;
    let other = setup_project(store, ns, 1).await;
    let now = T0 + 100;
    let original = cert(ns.serial(1), &p, "CN=frank", T0, T0 + 1000);
    insert_cert(store, &original).await.unwrap();

    // Same serial, everything else different (another project even).
    let dup = CertificateRecord {
        serial: original.serial,
        subject: "CN=mallory".into(),
        not_before: T0 + 1,
        not_after: T0 + 2000,
        cert_der: vec![0xde, 0xad],
        ..cert(0, &other, "CN=mallory", 0, 0)
    };
    assert_conflict(insert_cert(store, &dup).await, "certificate serial");
    // Same serial, same owner.
    let dup_same_owner = CertificateRecord {
        subject: "CN=other".into(),
        ..original.clone()
    };
    assert_conflict(
        insert_cert(store, &dup_same_owner).await,
        "certificate serial",
    );
    assert_conflict(insert_cert(store, &original).await, "certificate serial");

    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=frank", now, NO_PAGE)
            .await
            .unwrap(),
        (vec![summary(&original)], 1),
        "the original row is unchanged"
    );
    assert_eq!(
        store
            .list_unexpired_certificates(&other, "CN=mallory", now, NO_PAGE)
            .await
            .unwrap(),
        (Vec::new(), 0),
        "the duplicate was not stored"
    );

    // Other serials are fine, including large ones.
    for serial in [ns.serial(2), ns.serial(3), i64::MAX - 17] {
        insert_cert(store, &cert(serial, &p, "CN=frank", T0, T0 + 1000))
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=frank", now, NO_PAGE)
            .await
            .unwrap()
            .1,
        4
    );
}

/// `list_unexpired_certificates` returns certificates of (project, username) with
/// `not_after > now`, ordered by (notBefore, serial), paged, with the count of all of them.
pub async fn list_unexpired_certificates_filters_orders_and_pages(store: &dyn Store) {
    let ns = Ns(18);
    let p = setup_project(store, ns, 0).await;
    let other = setup_project(store, ns, 1).await;
    let now = T0 + 10_000;
    let s = |n| ns.serial(n);

    let live = [
        cert(s(7), &p, "CN=gina", T0 + 300, now + 1), // just alive
        cert(s(3), &p, "CN=gina", T0 + 100, now + 500),
        cert(s(9), &p, "CN=gina", T0 + 200, now + 86_400),
        cert(s(1), &p, "CN=gina", T0 + 200, now + 10), // ties on notBefore: serial order
        cert(s(5), &p, "CN=gina", T0 + 200, now + 20),
        cert(s(2), &p, "CN=gina", T0 + 400, i64::MAX),
    ];
    let noise = [
        cert(s(20), &p, "CN=gina", T0, now), // expires exactly now: excluded
        cert(s(21), &p, "CN=gina", T0, now - 1),
        cert(s(22), &p, "CN=gina", T0 - 1000, T0),
        cert(s(23), &p, "CN=other", T0, now + 100), // another user
        cert(s(24), &p, "cn=gina", T0, now + 100),  // usernames are case-sensitive
        cert(s(25), &other, "CN=gina", T0, now + 100), // another project
    ];
    for c in live.iter().chain(noise.iter()) {
        insert_cert(store, c).await.unwrap();
    }

    let expected = summaries([&live[1], &live[3], &live[4], &live[2], &live[0], &live[5]]);
    // Within one second of notBefore, issuance time (created_ms) orders before the serial.
    let (first, second) = (
        CertificateRecord {
            created_ms: (T0 + 3600) * 1000 + 1,
            ..cert(s(31), &other, "CN=hank", T0, now + 100)
        },
        CertificateRecord {
            created_ms: (T0 + 3600) * 1000 + 900,
            ..cert(s(30), &other, "CN=hank", T0, now + 100)
        },
    );
    insert_cert(store, &second).await.unwrap();
    insert_cert(store, &first).await.unwrap();
    assert_eq!(
        store
            .list_unexpired_certificates(&other, "CN=hank", now, NO_PAGE)
            .await
            .unwrap(),
        (summaries([&first, &second]), 2),
        "issued first is listed first, although its serial is larger"
    );
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=gina", now, NO_PAGE)
            .await
            .unwrap(),
        (expected.clone(), 6)
    );

    for (offset, limit) in [
        (0u64, 1u32),
        (0, 4),
        (1, 2),
        (4, 4),
        (5, 1),
        (6, 3),
        (1000, 1),
    ] {
        let (got, total) = store
            .list_unexpired_certificates(&p, "CN=gina", now, page(offset, limit))
            .await
            .unwrap();
        let start = (offset as usize).min(expected.len());
        let end = (start + limit as usize).min(expected.len());
        assert_eq!(
            got,
            expected[start..end],
            "page offset={offset} limit={limit}"
        );
        assert_eq!(
            total, 6,
            "total counts every unexpired certificate (offset={offset} limit={limit})"
        );
    }

    // The boundary moves with `now`.
    let (got, total) = store
        .list_unexpired_certificates(&p, "CN=gina", now - 1, NO_PAGE)
        .await
        .unwrap();
    assert_eq!(total, 7);
    assert!(
        got.contains(&summary(&noise[0])),
        "not_after == now + 1 is unexpired"
    );
    assert!(
        !got.contains(&summary(&noise[1])),
        "not_after == now is expired"
    );
    let (got, total) = store
        .list_unexpired_certificates(&p, "CN=gina", now + 1, NO_PAGE)
        .await
        .unwrap();
    assert_eq!(total, 5);
    assert!(!got.contains(&summary(&live[0])));
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=gina", i64::MAX, NO_PAGE)
            .await
            .unwrap(),
        (Vec::new(), 0)
    );

    // Scoping by project and username.
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=other", now, NO_PAGE)
            .await
            .unwrap(),
        (summaries([&noise[3]]), 1)
    );
    assert_eq!(
        store
            .list_unexpired_certificates(&other, "CN=gina", now, NO_PAGE)
            .await
            .unwrap(),
        (summaries([&noise[5]]), 1)
    );
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=nobody", now, NO_PAGE)
            .await
            .unwrap(),
        (Vec::new(), 0)
    );
    assert_eq!(
        store
            .list_unexpired_certificates(&ns.project(99), "CN=gina", now, NO_PAGE)
            .await
            .unwrap(),
        (Vec::new(), 0)
    );
}

/// Certificates belong to (project, username): deleting the database user keeps them, deleting
/// the project does not.
pub async fn certificates_outlive_database_user_but_not_project(store: &dyn Store) {
    let ns = Ns(19);
    let p = setup_project(store, ns, 0).await;
    let now = T0 + 100;
    store
        .create_database_user(&user(&p, "$external", "CN=hank", T0))
        .await
        .unwrap();
    let certs = [
        cert(ns.serial(1), &p, "CN=hank", T0, T0 + 1000),
        cert(ns.serial(2), &p, "CN=hank", T0 + 1, T0 + 1000),
    ];
    for c in &certs {
        insert_cert(store, c).await.unwrap();
    }
    let expected = (summaries(&certs), 2);

    assert!(
        store
            .delete_database_user(&p, "$external", "CN=hank")
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=hank", now, NO_PAGE)
            .await
            .unwrap(),
        expected
    );

    // A re-created user sees the old certificates, and new ones join them.
    store
        .create_database_user(&user(&p, "$external", "CN=hank", T0 + 50))
        .await
        .unwrap();
    let third = cert(ns.serial(3), &p, "CN=hank", T0 + 2, T0 + 1000);
    insert_cert(store, &third).await.unwrap();
    let (got, total) = store
        .list_unexpired_certificates(&p, "CN=hank", now, NO_PAGE)
        .await
        .unwrap();
    assert_eq!((got, total), (summaries(certs.iter().chain([&third])), 3));

    // A certificate does not need a user row at all.
    insert_cert(store, &cert(ns.serial(4), &p, "CN=ghost", T0, T0 + 1000))
        .await
        .unwrap();
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=ghost", now, NO_PAGE)
            .await
            .unwrap()
            .1,
        1
    );

    assert!(store.delete_project(&p).await.unwrap());
    for username in ["CN=hank", "CN=ghost"] {
        assert_eq!(
            store
                .list_unexpired_certificates(&p, username, now, NO_PAGE)
                .await
                .unwrap(),
            (Vec::new(), 0)
        );
    }
}

/// `insert_certificate` appends its audit entry in the same transaction: one entry for each
/// stored certificate, none for a refused one, and no seq is lost to a refusal.
pub async fn insert_certificate_appends_one_audit_entry(store: &dyn Store) {
    let ns = Ns(42);
    let p = setup_project(store, ns, 0).await;
    let now = T0 + 100;
    let (base, tip) = audit_tip(store, &p).await;
    let c = cert(ns.serial(1), &p, "CN=ivy", T0, T0 + 1000);
    let e = issued(&c);
    managed_user(store, &p, "CN=ivy").await;
    store.insert_certificate(&c, &e).await.unwrap();
    let after = store
        .list_audit(&AuditFilter::default(), base, 100)
        .await
        .unwrap();
    assert_eq!(after.len(), 1, "exactly one entry: {after:?}");
    let first = after[0].clone();
    assert_eq!(first.seq, base + 1);
    assert_eq!(first.event, e);
    assert_eq!(first.prev_hash, tip);
    assert!(first.is_intact());

    // A serial that exists already: no certificate, no audit entry.
    let dup = CertificateRecord {
        subject: "CN=mallory".into(),
        ..c.clone()
    };
    let dup_event = AuditEvent {
        actor: ns.actor(1),
        ..issued(&dup)
    };
    assert_conflict(
        store.insert_certificate(&dup, &dup_event).await,
        "certificate serial",
    );
    // A project that does not exist: no certificate, no audit entry.
    let orphan = cert(ns.serial(2), &ns.project(99), "CN=ivy", T0, T0 + 1000);
    assert!(matches!(
        store.insert_certificate(&orphan, &issued(&orphan)).await,
        Err(StoreError::Gone)
    ));
    assert_eq!(
        store
            .list_audit(&AuditFilter::default(), base, 100)
            .await
            .unwrap(),
        std::slice::from_ref(&first),
        "refused certificates leave no audit entry"
    );
    assert_eq!(
        store
            .list_audit(
                &AuditFilter {
                    actor: Some(ns.actor(1)),
                    ..AuditFilter::default()
                },
                0,
                100
            )
            .await
            .unwrap(),
        []
    );
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=ivy", now, NO_PAGE)
            .await
            .unwrap(),
        (vec![summary(&c)], 1)
    );

    // The next certificate's entry follows directly.
    let c2 = cert(ns.serial(3), &p, "CN=ivy", T0 + 1, T0 + 1000);
    insert_cert(store, &c2).await.unwrap();
    let after = store
        .list_audit(&AuditFilter::default(), base, 100)
        .await
        .unwrap();
    assert_eq!(after.len(), 2);
    assert_eq!(after[1].seq, base + 2, "no seq was lost to the refusals");
    assert_eq!(after[1].event, issued(&c2));
    assert_eq!(after[1].prev_hash, first.hash);
    assert!(after[1].is_intact());
    assert_eq!(
        store
            .list_audit(
                &AuditFilter {
                    project_id: Some(p.clone()),
                    ..AuditFilter::default()
                },
                0,
                100
            )
            .await
            .unwrap(),
        after
    );
    assert_audit_log_intact(store).await;
}

/// A group commit of `k` certificates spread over two projects, each with its own audit entry
/// alone beside it, and one certificate of a missing project, set up in namespace `n`:
/// the batch, and the outcomes [`Store::commit_batch`] must give it. For checks of what a batch
/// costs whatever its size (PostgreSQL's round trips).
pub async fn mixed_batch(store: &dyn Store, n: u64, k: u64) -> (Vec<BatchWrite>, Vec<Recorded>) {
    let ns = Ns(n);
    let projects = [
        setup_project(store, ns, 0).await,
        setup_project(store, ns, 1).await,
    ];
    for p in &projects {
        managed_user(store, p, "CN=jo").await;
    }
    let mut batch = Vec::new();
    let mut outcomes = Vec::new();
    for i in 0..k {
        let c = cert(
            ns.serial(i as i64),
            &projects[(i % 2) as usize],
            "CN=jo",
            T0,
            T0 + 1000,
        );
        let request = AuditEvent {
            action: "POST /request".into(),
            ..issued(&c)
        };
        batch.push(BatchWrite::Certificate(c, request.clone()));
        batch.push(BatchWrite::Audit(request));
        outcomes.extend([Recorded::Yes, Recorded::Yes]);
    }
    let orphan = cert(ns.serial(k as i64), &ns.project(99), "CN=jo", T0, T0 + 1000);
    batch.push(BatchWrite::Certificate(orphan.clone(), issued(&orphan)));
    outcomes.push(Recorded::ProjectGone);
    (batch, outcomes)
}

/// `commit_batch` (the server's group commit) records a batch in one transaction: a taken
/// serial (stored before, or earlier in the same batch) and a missing project each skip only
/// their certificate; the recorded certificates and the audit entries alone get consecutive
/// audit entries, in batch order.
pub async fn commit_batch_skips_only_the_refused(store: &dyn Store) {
    let ns = Ns(46);
    let p = setup_project(store, ns, 0).await;
    let earlier = cert(ns.serial(1), &p, "CN=jo", T0, T0 + 1000);
    insert_cert(store, &earlier).await.unwrap();
    let (base, tip) = audit_tip(store, &p).await;
    let first = cert(ns.serial(2), &p, "CN=jo", T0 + 1, T0 + 1000);
    let taken_before = cert(ns.serial(1), &p, "CN=jo", T0 + 2, T0 + 1000);
    let taken_in_batch = cert(ns.serial(2), &p, "CN=other", T0 + 3, T0 + 1000);
    let orphan = cert(ns.serial(3), &ns.project(99), "CN=jo", T0 + 4, T0 + 1000);
    let last = cert(ns.serial(4), &p, "CN=jo", T0 + 5, T0 + 1000);
    managed_user(store, &p, "CN=other").await;
    let request = AuditEvent {
        actor: ns.actor(2),
        action: "POST /request".into(),
        ..issued(&first)
    };
    let mut batch: Vec<_> = [&first, &taken_before, &taken_in_batch, &orphan]
        .into_iter()
        .map(|c| BatchWrite::Certificate(c.clone(), issued(c)))
        .collect();
    batch.push(BatchWrite::Audit(request.clone()));
    batch.push(BatchWrite::Certificate(last.clone(), issued(&last)));
    assert_eq!(
        store.commit_batch(&batch).await.unwrap(),
        [
            Recorded::Yes,
            Recorded::SerialTaken,
            Recorded::SerialTaken,
            Recorded::ProjectGone,
            Recorded::Yes,
            Recorded::Yes
        ]
    );
    let entries = store
        .list_audit(&AuditFilter::default(), base, 100)
        .await
        .unwrap();
    assert_eq!(
        entries
            .iter()
            .map(|e| (e.seq, &e.event))
            .collect::<Vec<_>>(),
        [
            (base + 1, &issued(&first)),
            (base + 2, &request),
            (base + 3, &issued(&last))
        ]
    );
    assert_eq!(entries[0].prev_hash, tip);
    assert!(entries.windows(2).all(|w| w[1].prev_hash == w[0].hash));
    assert!(entries.iter().all(AuditEntry::is_intact));
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=jo", T0 + 100, NO_PAGE)
            .await
            .unwrap(),
        (summaries([&earlier, &first, &last]), 3)
    );
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=other", T0 + 100, NO_PAGE)
            .await
            .unwrap(),
        (vec![], 0)
    );
    assert_eq!(store.commit_batch(&[]).await.unwrap(), []);
    assert_audit_log_intact(store).await;
}

/// A certificate is recorded only while its project has a `MANAGED` X.509 user of its name
/// (on `$external` or `admin`): one of a user deleted, of a user that is not `MANAGED` (or no
/// longer), or of a user of another project is refused, in a batch without affecting the other
/// writes, and leaves neither certificate nor audit entry. A node may have signed it from a
/// stale read of the user (its read cache); the store's check is the one that counts.
pub async fn certificate_needs_a_managed_user(store: &dyn Store) {
    let ns = Ns(57);
    let p = setup_project(store, ns, 0).await;
    let q = setup_project(store, ns, 1).await;
    let now = T0 + 100;
    let kept = cert(ns.serial(1), &p, "CN=kim", T0, T0 + 1000);
    insert_cert(store, &kept).await.unwrap();
    assert!(
        store
            .delete_database_user(&p, "$external", "CN=kim")
            .await
            .unwrap()
    );
    // A user of that name in another project does not count.
    managed_user(store, &q, "CN=kim").await;
    // A SCRAM user on `admin`; a MANAGED user changed to NONE.
    let scram = DatabaseUserRecord {
        x509_type: "NONE".to_owned(),
        ..user(&p, "admin", "CN=lee", T0)
    };
    store.create_database_user(&scram).await.unwrap();
    managed_user(store, &p, "CN=max").await;
    let unmanaged = DatabaseUserRecord {
        x509_type: "NONE".to_owned(),
        ..user(&p, "$external", "CN=max", T0)
    };
    assert!(store.update_database_user(&unmanaged).await.unwrap());
    managed_user(store, &p, "CN=ned").await;

    let (base, _) = audit_tip(store, &p).await;
    let deleted = cert(ns.serial(2), &p, "CN=kim", T0 + 1, T0 + 1000);
    let scram_cert = cert(ns.serial(3), &p, "CN=lee", T0 + 2, T0 + 1000);
    let changed = cert(ns.serial(4), &p, "CN=max", T0 + 3, T0 + 1000);
    let fine = cert(ns.serial(5), &p, "CN=ned", T0 + 4, T0 + 1000);
    let batch: Vec<_> = [&deleted, &scram_cert, &changed, &fine]
        .into_iter()
        .map(|c| BatchWrite::Certificate(c.clone(), issued(c)))
        .collect();
    assert_eq!(
        store.commit_batch(&batch).await.unwrap(),
        [
            Recorded::UserGone,
            Recorded::UserNotManaged,
            Recorded::UserNotManaged,
            Recorded::Yes
        ]
    );
    for refused in [&deleted, &scram_cert, &changed] {
        assert_eq!(
            store.get_certificate(&p, refused.serial).await.unwrap(),
            None,
            "{} was refused",
            refused.username
        );
        // One write alone: the store's error for a referenced row that is gone.
        assert!(matches!(
            store.insert_certificate(refused, &issued(refused)).await,
            Err(StoreError::Gone)
        ));
    }
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=kim", now, NO_PAGE)
            .await
            .unwrap(),
        (vec![summary(&kept)], 1),
        "the deleted user keeps only the certificate issued before"
    );
    for name in ["CN=lee", "CN=max"] {
        assert_eq!(
            store
                .list_user_certificates(&p, name, NO_PAGE)
                .await
                .unwrap(),
            (vec![], 0)
        );
    }
    let entries = store
        .list_audit(&AuditFilter::default(), base, 100)
        .await
        .unwrap();
    assert_eq!(
        entries.iter().map(|e| &e.event).collect::<Vec<_>>(),
        [&issued(&fine)],
        "only the recorded certificate is audited"
    );

    // The user made MANAGED again, or created again: recorded.
    let managed = DatabaseUserRecord {
        x509_type: "MANAGED".to_owned(),
        ..unmanaged
    };
    assert!(store.update_database_user(&managed).await.unwrap());
    insert_cert(store, &changed).await.unwrap();
    insert_cert(store, &deleted).await.unwrap();
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=kim", now, NO_PAGE)
            .await
            .unwrap(),
        (summaries([&kept, &deleted]), 2)
    );
    assert_audit_log_intact(store).await;
}
