//! Conformance checks of the CRL state (`crl_state`, migration 0008): the revision every
//! revocation moves in its own transaction, publication as compare-and-set on the CRL number,
//! and the list of CRLs due for rebuilding.

use super::*;
use dbcerts_store::PublishedCrl;

fn published(number: i64, built_revision: i64, refresh_at: i64, tag: u8) -> PublishedCrl {
    PublishedCrl {
        number,
        built_revision,
        this_update: T0 + 1000,
        next_update: T0 + 8000,
        refresh_at,
        der: vec![0x30, tag, number as u8],
    }
}

async fn revoke_one(store: &dyn Store, ns: Ns, project: &str, username: &str, serial: i64) {
    let r = Revocation {
        at: T0 + 1500,
        reason: RevocationReason::KeyCompromise,
    };
    store
        .revoke_certificates(
            project,
            username,
            RevokeWhich::One(serial),
            r,
            &revoked_template(ns, project, username, "keyCompromise"),
        )
        .await
        .unwrap();
}

/// Every revocation moves its CA's revision (and no other CA's), in the revoking transaction;
/// revoking again what is already revoked does not.
pub async fn crl_revision_moves_with_each_revocation(store: &dyn Store) {
    let ns = Ns(70);
    let (p, ca_p) = project_with_ca(store, ns, 0).await;
    let (q, ca_q) = project_with_ca(store, ns, 1).await;
    let state = store.get_crl_state(ca_p.id).await.unwrap();
    assert_eq!((state.revision, state.published), (0, None));
    for n in 1..=3 {
        insert_cert(
            store,
            &issued_by(&ca_p, cert(ns.serial(n), &p, "CN=al", T0, T0 + 9000)),
        )
        .await
        .unwrap();
    }
    insert_cert(
        store,
        &issued_by(&ca_q, cert(ns.serial(9), &q, "CN=al", T0, T0 + 9000)),
    )
    .await
    .unwrap();
    revoke_one(store, ns, &p, "CN=al", ns.serial(1)).await;
    assert_eq!(store.get_crl_state(ca_p.id).await.unwrap().revision, 1);
    revoke_one(store, ns, &p, "CN=al", ns.serial(1)).await;
    assert_eq!(store.get_crl_state(ca_p.id).await.unwrap().revision, 1);
    store
        .revoke_certificates(
            &p,
            "CN=al",
            RevokeWhich::AllUnexpired { now: T0 + 2000 },
            Revocation {
                at: T0 + 2000,
                reason: RevocationReason::CessationOfOperation,
            },
            &revoked_template(ns, &p, "CN=al", "cessationOfOperation"),
        )
        .await
        .unwrap();
    assert_eq!(store.get_crl_state(ca_p.id).await.unwrap().revision, 3);
    assert_eq!(store.get_crl_state(ca_q.id).await.unwrap().revision, 0);
}

/// A CRL is published only with the next number: one more than the stored one (1 for the
/// first). Of racing publishers of one number exactly one wins, and its CRL is the one kept.
pub async fn crl_publish_is_compare_and_set(store: &dyn Store) {
    let ns = Ns(71);
    let (_p, ca) = project_with_ca(store, ns, 0).await;
    assert!(
        !store
            .publish_crl(ca.id, &published(2, 0, T0, 1))
            .await
            .unwrap()
    );
    assert!(
        store
            .publish_crl(ca.id, &published(1, 0, T0, 1))
            .await
            .unwrap()
    );
    assert!(
        !store
            .publish_crl(ca.id, &published(1, 0, T0, 2))
            .await
            .unwrap()
    );
    let state = store.get_crl_state(ca.id).await.unwrap();
    assert_eq!(state.published, Some(published(1, 0, T0, 1)));
    assert!(
        !store
            .publish_crl(ca.id, &published(3, 0, T0, 1))
            .await
            .unwrap()
    );
    assert!(
        store
            .publish_crl(ca.id, &published(2, 0, T0 + 5, 2))
            .await
            .unwrap()
    );

    let attempts = (0..8u8).map(|tag| async move {
        let crl = published(3, 0, T0, 10 + tag);
        (store.publish_crl(ca.id, &crl).await.unwrap(), crl)
    });
    let results = futures_join_all(attempts).await;
    let winners: Vec<_> = results.iter().filter(|(won, _)| *won).collect();
    assert_eq!(winners.len(), 1, "exactly one publisher of number 3 wins");
    let state = store.get_crl_state(ca.id).await.unwrap();
    assert_eq!(state.published.as_ref(), Some(&winners[0].1));
}

/// Due: projects with published CRLs built before the latest revocation or past their refresh time, of CAs
/// that have not expired.
pub async fn crls_due_are_the_stale_and_the_old(store: &dyn Store) {
    let ns = Ns(72);
    let (p, ca_p) = project_with_ca(store, ns, 0).await;
    let (q, ca_q) = project_with_ca(store, ns, 1).await;
    let now = T0 + 3000;
    let mine = |ids: Vec<String>| -> Vec<String> {
        ids.into_iter().filter(|id| *id == p || *id == q).collect()
    };
    // Nothing published yet: nothing due, even after a revocation.
    insert_cert(
        store,
        &issued_by(&ca_q, cert(ns.serial(5), &q, "CN=bo", T0, T0 + 9000)),
    )
    .await
    .unwrap();
    revoke_one(store, ns, &q, "CN=bo", ns.serial(5)).await;
    assert_eq!(
        mine(store.list_projects_with_crls_due(now).await.unwrap()),
        Vec::<String>::new()
    );

    assert!(
        store
            .publish_crl(ca_p.id, &published(1, 0, now + 100, 1))
            .await
            .unwrap()
    );
    assert_eq!(
        mine(store.list_projects_with_crls_due(now).await.unwrap()),
        Vec::<String>::new()
    );
    // Its refresh time has come.
    assert_eq!(
        mine(store.list_projects_with_crls_due(now + 100).await.unwrap()),
        vec![p.clone()]
    );
    // A revocation makes it due at once.
    insert_cert(
        store,
        &issued_by(&ca_p, cert(ns.serial(1), &p, "CN=bo", T0, T0 + 9000)),
    )
    .await
    .unwrap();
    revoke_one(store, ns, &p, "CN=bo", ns.serial(1)).await;
    assert_eq!(
        mine(store.list_projects_with_crls_due(now).await.unwrap()),
        vec![p.clone()]
    );
    assert!(
        store
            .publish_crl(ca_p.id, &published(2, 1, now + 100, 2))
            .await
            .unwrap()
    );
    assert_eq!(
        mine(store.list_projects_with_crls_due(now).await.unwrap()),
        Vec::<String>::new()
    );
    // Once the CA itself has expired, its CRL is never due again.
    let after_ca = ca_p.not_after;
    assert_eq!(
        mine(store.list_projects_with_crls_due(after_ca).await.unwrap()),
        Vec::<String>::new()
    );
}

/// The CRL distribution token: made once per project (the first stored wins, later calls get
/// it), found by token, unique per project, gone with the project.
pub async fn crl_distribution_tokens_are_stored_once(store: &dyn Store) {
    let ns = Ns(73);
    let p = setup_project(store, ns, 0).await;
    let q = setup_project(store, ns, 1).await;
    let tp = format!("{}-tok-p", ns.0);
    let tq = format!("{}-tok-q", ns.0);
    assert_eq!(store.project_of_crl_token(&tp).await.unwrap(), None);
    assert_eq!(store.crl_distribution_token(&p, &tp).await.unwrap(), tp);
    assert_eq!(
        store.crl_distribution_token(&p, "another").await.unwrap(),
        tp
    );
    assert_eq!(store.crl_distribution_token(&q, &tq).await.unwrap(), tq);
    assert_eq!(
        store.project_of_crl_token(&tp).await.unwrap(),
        Some(p.clone())
    );
    assert_eq!(
        store.project_of_crl_token(&tq).await.unwrap(),
        Some(q.clone())
    );
    assert_eq!(store.project_of_crl_token("another").await.unwrap(), None);
}
