//! Conformance checks of revoked access tokens and Digest nonce counts.

use super::*;

/// A revoked token is reported revoked until a later revocation finds it expired
/// (`expires <= now`); revoking a token twice is harmless.
pub async fn revoked_tokens_remembered_until_expiry(store: &dyn Store) {
    let ns = Ns(36);
    let [a, b, c, d, e] = [1, 2, 3, 4, 5].map(|n| ns.jti(n));
    let revoked = move |jti: &str| {
        let jti = jti.to_owned();
        async move { store.is_token_revoked(&jti).await.unwrap() }
    };
    let t = T0;
    assert!(!revoked(&a).await, "nothing is revoked at first");

    store.revoke_token(&a, t + 100, t).await.unwrap();
    assert!(revoked(&a).await);
    assert!(!revoked(&b).await, "only the revoked token");
    store.revoke_token(&a, t + 100, t).await.unwrap();
    assert!(revoked(&a).await, "revoking twice is harmless");

    store.revoke_token(&b, t + 300, t + 1).await.unwrap();
    store.revoke_token(&c, t + 1000, t + 99).await.unwrap();
    for jti in [&a, &b, &c] {
        assert!(revoked(jti).await, "{jti} has not expired yet");
    }

    // At t + 100, A (expires t + 100) has expired: the next revocation forgets it.
    store.revoke_token(&d, t + 1000, t + 100).await.unwrap();
    assert!(!revoked(&a).await, "expires == now is expired");
    for jti in [&b, &c, &d] {
        assert!(revoked(jti).await, "{jti} has not expired yet");
    }

    store.revoke_token(&e, t + 2000, t + 1000).await.unwrap();
    for jti in [&a, &b, &c, &d] {
        assert!(!revoked(jti).await, "{jti} has expired");
    }
    assert!(revoked(&e).await);

    // A forgotten token can be revoked again.
    store.revoke_token(&a, t + 3000, t + 1000).await.unwrap();
    assert!(revoked(&a).await);
}

/// A Digest nonce count write of a group commit.
pub(crate) fn nonce_count(nonce: &str, nc: u32, expires: i64, now: i64) -> BatchWrite {
    BatchWrite::DigestNonceCount {
        nonce: nonce.to_owned(),
        nc,
        expires,
        now,
    }
}

/// `commit_batch` records a Digest nonce count only when it is higher than every count
/// recorded for its nonce, within a batch and across batches; nonces are independent; audit
/// entries in the same batch chain as usual; a batch removes the counts of expired nonces and
/// keeps the live ones.
pub async fn digest_nonce_counts_only_rise_and_expire(store: &dyn Store) {
    let ns = Ns(47);
    let (a, b, old) = (ns.jti(1), ns.jti(2), ns.jti(3));
    let live = T0 + 300;
    let (base, _) = audit_tip(store, "").await;
    let request = AuditEvent {
        at_ms: T0 * 1000,
        actor: ns.actor(1),
        source_ip: None,
        action: "POST /nonce-check".into(),
        project_id: None,
        target: None,
        status: Some(201),
        details: "{}".into(),
    };
    let batch = [
        nonce_count(&a, 1, live, T0),
        nonce_count(&a, 1, live, T0),
        BatchWrite::Audit(request.clone()),
        nonce_count(&a, 3, live, T0),
        nonce_count(&a, 2, live, T0),
        nonce_count(&b, 1, live, T0),
        nonce_count(&old, 7, T0 + 10, T0),
    ];
    use Recorded::{CountNotHigher as No, Yes};
    assert_eq!(
        store.commit_batch(&batch).await.unwrap(),
        [Yes, No, Yes, Yes, No, Yes, Yes]
    );
    let entries = store
        .list_audit(&AuditFilter::default(), base, 100)
        .await
        .unwrap();
    assert_eq!(
        entries.iter().map(|e| &e.event).collect::<Vec<_>>(),
        [&request]
    );
    // Later batches see what earlier ones recorded.
    assert_eq!(
        store
            .commit_batch(&[
                nonce_count(&a, 3, live, T0 + 1),
                nonce_count(&a, 4, live, T0 + 1),
                nonce_count(&b, 1, live, T0 + 1),
                nonce_count(&old, 7, T0 + 10, T0 + 1),
            ])
            .await
            .unwrap(),
        [No, Yes, No, No]
    );
    // A batch at T0 + 11 removes the expired nonce's count: its count can be recorded afresh
    // (the server refuses the expired nonce before it gets here). The live ones stay.
    assert_eq!(
        store
            .commit_batch(&[nonce_count(&b, 2, live, T0 + 11)])
            .await
            .unwrap(),
        [Yes]
    );
    assert_eq!(
        store
            .commit_batch(&[
                nonce_count(&old, 1, T0 + 400, T0 + 12),
                nonce_count(&a, 4, live, T0 + 12),
                nonce_count(&b, 2, live, T0 + 12),
            ])
            .await
            .unwrap(),
        [Yes, No, No]
    );
    assert_audit_log_intact(store).await;
}

/// Two nodes recording the same nonce counts at the same moment: each count is accepted once,
/// by one node, never by both.
pub async fn digest_nonce_count_accepted_once_across_two_nodes(
    first: &dyn Store,
    second: &dyn Store,
) {
    let ns = Ns(48);
    for n in 0..20 {
        let nonce = ns.jti(n);
        for nc in 1..=3 {
            let write = [nonce_count(&nonce, nc, T0 + 300, T0)];
            let (x, y) = tokio::join!(first.commit_batch(&write), second.commit_batch(&write));
            let mut outcomes = [x.unwrap()[0], y.unwrap()[0]];
            outcomes.sort_by_key(|o| *o != Recorded::Yes);
            assert_eq!(
                outcomes,
                [Recorded::Yes, Recorded::CountNotHigher],
                "nonce {n} nc {nc}"
            );
        }
    }
}

/// Two nodes' batches writing the same Digest nonces in opposite orders, at the same moment,
/// both commit (on PostgreSQL, upserts taken in arrival order locked the rows in opposite
/// orders, and the deadlock failed one whole batch), and each count is still accepted once.
/// The first node's clock is ahead: its batch's prune removes a count that the second node,
/// for which that nonce is still live, is raising in its own batch at that moment (a prune that
/// waited for that row could close a cycle with the second batch waiting for the first).
pub async fn digest_nonce_batches_in_opposite_orders_both_commit(
    first: &dyn Store,
    second: &dyn Store,
) {
    let ns = Ns(58);
    let nonces: Vec<String> = (0..24).map(|n| ns.jti(n)).collect();
    let live = T0 + 1000;
    for round in 0..30u32 {
        let nc = round + 1;
        let now = T0 + 20 * i64::from(round);
        // Sorts before every shared nonce ('-' < '0'), so the second batch holds it first.
        let skewed = format!("jti-{}--skewed-{round}", ns.0);
        assert!(skewed < nonces[0]);
        assert_eq!(
            second
                .commit_batch(&[nonce_count(&skewed, 1, now + 1, now)])
                .await
                .unwrap(),
            [Recorded::Yes]
        );
        let forward: Vec<_> = nonces
            .iter()
            .map(|n| nonce_count(n, nc, live, now + 10))
            .collect();
        let mut backward: Vec<_> = nonces
            .iter()
            .rev()
            .map(|n| nonce_count(n, nc, live, now))
            .collect();
        // A repeat within the batch: refused without changing the others.
        backward.push(nonce_count(&nonces[0], nc, live, now));
        backward.push(nonce_count(&skewed, 2, now + 1, now));
        let (x, y) = tokio::join!(first.commit_batch(&forward), second.commit_batch(&backward));
        let (x, y) = (
            x.unwrap_or_else(|e| panic!("round {round}: the first node's batch failed: {e}")),
            y.unwrap_or_else(|e| panic!("round {round}: the second node's batch failed: {e}")),
        );
        let n = nonces.len();
        assert_eq!(y[n], Recorded::CountNotHigher, "round {round}: the repeat");
        // Raised, or (pruned by the first batch just before) recorded afresh.
        assert_eq!(y[n + 1], Recorded::Yes, "round {round}: the skewed nonce");
        for i in 0..n {
            // `backward` holds the same nonces in reverse order.
            let mut outcomes = [x[i], y[n - 1 - i]];
            outcomes.sort_by_key(|o| *o != Recorded::Yes);
            assert_eq!(
                outcomes,
                [Recorded::Yes, Recorded::CountNotHigher],
                "round {round}, nonce {i}: accepted once"
            );
        }
    }
}
