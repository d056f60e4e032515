//! Conformance checks of the managed CA: the first insert wins (also across two nodes), and
//! rotation and retirement of CA generations.

use super::*;

/// Two nodes creating the same projects' CAs at the same moment end with one CA per project,
/// the same on both.
pub async fn ca_race_across_two_nodes(first: &dyn Store, second: &dyn Store) {
    let ns = Ns(45);
    for n in 0..10 {
        let p = setup_project(first, ns, n).await;
        let (a, b) = (ca(&p, 2 * n as u8), ca(&p, 2 * n as u8 + 1));
        let (ra, rb) = tokio::join!(
            first.insert_ca_if_absent(&a),
            second.insert_ca_if_absent(&b)
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(ra, rb, "both nodes get the same CA");
        assert_eq!(second.get_active_ca(&p).await.unwrap(), Some(ra.clone()));
        assert_eq!(first.get_active_ca(&p).await.unwrap(), Some(ra));
    }
}

/// There is no CA until one is inserted; after that, every insert returns the first CA.
pub async fn ca_first_insert_wins(store: &dyn Store) {
    let ns = Ns(10);
    let p = setup_project(store, ns, 0).await;
    let other = setup_project(store, ns, 1).await;
    assert_eq!(store.get_active_ca(&p).await.unwrap(), None);
    assert_eq!(store.get_active_ca(&ns.project(99)).await.unwrap(), None);

    let offered = ca(&p, 1);
    let winner = store.insert_ca_if_absent(&offered).await.unwrap();
    assert_eq!(sans_id(winner.clone()), offered, "the first insert wins");
    assert!(winner.id > 0, "the store assigns the row id: {winner:?}");
    assert_eq!(store.get_active_ca(&p).await.unwrap(), Some(winner.clone()));

    let loser = ca(&p, 2);
    assert_ne!(loser.cert_der, winner.cert_der);
    assert_eq!(
        store.insert_ca_if_absent(&loser).await.unwrap(),
        winner,
        "a later insert loses"
    );
    assert_eq!(store.insert_ca_if_absent(&offered).await.unwrap(), winner);
    assert_eq!(store.get_active_ca(&p).await.unwrap(), Some(winner.clone()));

    // Each project has its own CA, with its own id.
    assert_eq!(store.get_active_ca(&other).await.unwrap(), None);
    let other_ca = ca(&other, 2);
    let other_stored = store.insert_ca_if_absent(&other_ca).await.unwrap();
    assert_eq!(sans_id(other_stored.clone()), other_ca);
    assert_ne!(other_stored.id, winner.id);
    assert_eq!(store.get_active_ca(&p).await.unwrap(), Some(winner));
}

/// Two inserts racing for a project's CA agree on one winner.
pub async fn ca_concurrent_inserts_agree(store: &dyn Store) {
    let ns = Ns(11);
    for n in 0..10 {
        let p = setup_project(store, ns, n).await;
        let (a, b) = (ca(&p, 2 * n as u8), ca(&p, 2 * n as u8 + 1));
        let (ra, rb) = tokio::join!(store.insert_ca_if_absent(&a), store.insert_ca_if_absent(&b));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(ra, rb, "both racers get the same CA");
        let offered = sans_id(ra.clone());
        assert!(
            offered == a || offered == b,
            "the winner is one of the CAs offered"
        );
        assert_eq!(store.get_active_ca(&p).await.unwrap(), Some(ra));
    }
}

/// Generation `generation` of `p`'s CA as a rotation offers it.
pub(crate) fn next_ca(p: &str, tag: u8, generation: i64) -> CaRecord {
    CaRecord {
        generation,
        ..ca(p, tag)
    }
}

/// The audit entries of one action about project `p`.
pub(crate) async fn actions_about(store: &dyn Store, p: &str, action: &str) -> usize {
    audit_log(store)
        .await
        .iter()
        .filter(|e| e.event.action == action && e.event.project_id.as_deref() == Some(p))
        .count()
}

/// Rotation swaps the active CA for the next generation with one audit entry, and only from the
/// CA that is active; retirement refuses the active CA and unknown generations, happens once
/// (its first time kept, one audit entry), and the expiry list and last-leaf probe follow.
pub async fn ca_rotation_and_retirement(store: &dyn Store) {
    let ns = Ns(53);
    let (p, g1) = project_with_ca(store, ns, 0).await;
    let (q, _) = project_with_ca(store, ns, 1).await;
    assert_eq!((g1.generation, g1.active, g1.retired_at), (1, true, None));
    let ev = |action: &str| audit_event(&ns.actor(1), action, Some(&p), (T0 + 10) * 1000);

    let g2 = store
        .rotate_ca(&next_ca(&p, 7, 2), g1.id, &ev("ca.rotated"))
        .await
        .unwrap()
        .expect("rotating from the active CA succeeds");
    assert_eq!((g2.generation, g2.active, g2.retired_at), (2, true, None));
    assert_eq!(sans_id(g2.clone()), next_ca(&p, 7, 2));
    assert_eq!(store.get_active_ca(&p).await.unwrap(), Some(g2.clone()));
    let listed = store.list_project_cas(&p).await.unwrap();
    assert_eq!(
        listed,
        vec![
            CaRecord {
                active: false,
                ..g1.clone()
            },
            g2.clone()
        ]
    );
    assert_eq!(actions_about(store, &p, "ca.rotated").await, 1);

    // From a CA that is no longer active: nothing happens, nothing is audited.
    let stale = store
        .rotate_ca(&next_ca(&p, 9, 2), g1.id, &ev("ca.rotated"))
        .await
        .unwrap();
    assert_eq!(stale, None);
    assert_eq!(store.list_project_cas(&p).await.unwrap(), listed);
    assert_eq!(actions_about(store, &p, "ca.rotated").await, 1);

    // Retirement.
    let retired_event = ev("ca.retired");
    let retire = |generation: i64, now: i64| store.retire_ca(&p, generation, now, &retired_event);
    assert_eq!(retire(2, T0 + 20).await.unwrap(), RetireOutcome::Active);
    assert_eq!(retire(3, T0 + 20).await.unwrap(), RetireOutcome::NotFound);
    let retired = CaRecord {
        active: false,
        retired_at: Some(T0 + 20),
        ..g1.clone()
    };
    assert_eq!(
        retire(1, T0 + 20).await.unwrap(),
        RetireOutcome::Retired {
            ca: retired.clone(),
            now: true
        }
    );
    assert_eq!(
        retire(1, T0 + 30).await.unwrap(),
        RetireOutcome::Retired {
            ca: retired.clone(),
            now: false
        },
        "the first retirement time stays"
    );
    assert_eq!(actions_about(store, &p, "ca.retired").await, 1);
    assert_eq!(
        store.list_project_cas(&p).await.unwrap(),
        vec![retired, g2.clone()]
    );
    // Another project's generations are untouched.
    assert_eq!(
        store
            .retire_ca(&q, 2, T0 + 20, &ev("ca.retired"))
            .await
            .unwrap(),
        RetireOutcome::NotFound
    );

    let mine: Vec<CaExpiry> = store
        .unretired_ca_expiries()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.project_id == p || e.project_id == q)
        .collect();
    let want_q = CaExpiry {
        project_id: q.clone(),
        generation: 1,
        not_after: ca(&q, 1).not_after,
    };
    let want_p = CaExpiry {
        project_id: p.clone(),
        generation: 2,
        not_after: g2.not_after,
    };
    let mut want = vec![want_p, want_q];
    want.sort_by(|a, b| a.project_id.cmp(&b.project_id));
    assert_eq!(mine, want, "retired generations are left out");

    // The last certificate a CA signed.
    assert_eq!(store.last_leaf_not_after(g2.id).await.unwrap(), None);
    for (n, end) in [(1, T0 + 500), (2, T0 + 900), (3, T0 + 700)] {
        let c = issued_by(&g2, cert(ns.serial(n), &p, "CN=ann", T0, end));
        insert_cert(store, &c).await.unwrap();
    }
    assert_eq!(
        store.last_leaf_not_after(g2.id).await.unwrap(),
        Some(T0 + 900)
    );
    assert_eq!(store.last_leaf_not_after(g1.id).await.unwrap(), None);
}

/// Two nodes rotating one project's CA at the same moment, from the same active CA, make one
/// new generation: exactly one call wins, and both nodes then see it as the active CA.
pub async fn ca_rotation_race_across_two_nodes(first: &dyn Store, second: &dyn Store) {
    let ns = Ns(54);
    for n in 0..10 {
        let (p, g1) = project_with_ca(first, ns, n).await;
        let ev = audit_event(&ns.actor(1), "ca.rotated", Some(&p), (T0 + 10) * 1000);
        let (a, b) = (next_ca(&p, 2 * n as u8, 2), next_ca(&p, 2 * n as u8 + 1, 2));
        let (ra, rb) = tokio::join!(
            first.rotate_ca(&a, g1.id, &ev),
            second.rotate_ca(&b, g1.id, &ev)
        );
        let winners: Vec<CaRecord> = [ra.unwrap(), rb.unwrap()].into_iter().flatten().collect();
        assert_eq!(winners.len(), 1, "exactly one rotation wins");
        assert_eq!(
            first.get_active_ca(&p).await.unwrap().as_ref(),
            winners.first()
        );
        assert_eq!(
            second.get_active_ca(&p).await.unwrap().as_ref(),
            winners.first()
        );
        assert_eq!(first.list_project_cas(&p).await.unwrap().len(), 2);
    }
}
