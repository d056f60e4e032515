//! Conformance checks of server secrets: the first value stored wins, even under a race.

use super::*;

/// The first value stored under a secret name wins; later values are ignored.
pub async fn secret_first_value_wins(store: &dyn Store) {
    let ns = Ns(4);
    let name = ns.secret("nonce-key");
    let first = vec![1u8, 2, 3, 0, 255];
    let second = vec![9u8; 64];
    assert_eq!(
        store.get_or_insert_secret(&name, &first).await.unwrap(),
        first
    );
    assert_eq!(
        store.get_or_insert_secret(&name, &second).await.unwrap(),
        first
    );
    assert_eq!(store.get_or_insert_secret(&name, &[]).await.unwrap(), first);
    assert_eq!(
        store.get_or_insert_secret(&name, &first).await.unwrap(),
        first
    );

    // Names are independent.
    let other = ns.secret("check-value");
    assert_eq!(
        store.get_or_insert_secret(&other, &second).await.unwrap(),
        second
    );
    assert_eq!(
        store.get_or_insert_secret(&name, &second).await.unwrap(),
        first
    );
}

/// Nodes racing to create the same secret all end up with one value.
pub async fn secret_concurrent_inserts_agree(store: &dyn Store) {
    let ns = Ns(5);
    for i in 0..10u8 {
        let name = ns.secret(&format!("race-{i}"));
        let (a, b) = (vec![i, 0xaa], vec![i, 0xbb]);
        let (ra, rb) = tokio::join!(
            store.get_or_insert_secret(&name, &a),
            store.get_or_insert_secret(&name, &b)
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(ra, rb, "both racers see the same secret");
        assert!(
            ra == a || ra == b,
            "the secret is one of the values offered"
        );
        assert_eq!(store.get_or_insert_secret(&name, &[0]).await.unwrap(), ra);
    }
}
