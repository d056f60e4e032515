//! Conformance checks of organizations: the empty store, the one-time bootstrap, and creating an
//! organization with its first API key.

use super::*;

/// A fresh store is empty; it is not once an organization exists. Needs a fresh store.
pub async fn is_empty_until_first_org(store: &dyn Store) {
    let ns = Ns(1);
    assert!(store.is_empty().await.unwrap(), "a fresh store is empty");
    assert!(
        store.is_empty().await.unwrap(),
        "is_empty does not change the store"
    );
    setup_org(store, ns, 0).await;
    assert!(
        !store.is_empty().await.unwrap(),
        "a store with an organization is not empty"
    );
}

/// Of eight nodes bootstrapping at once, exactly one creates the first organization and its
/// key; the losers leave nothing behind. On a store that has organizations already (as under
/// [`run_all`]), nobody bootstraps.
pub async fn bootstrap_first_org_happens_once(store: &dyn Store) {
    let ns = Ns(43);
    let was_empty = store.is_empty().await.unwrap();
    let racers: Vec<(Org, ApiKeyRecord)> = (0..8)
        .map(|n| {
            let id = ns.org(n);
            (org(&id), api_key(ns, n, &id))
        })
        .collect();
    let results =
        futures_join_all(racers.iter().map(|(o, k)| store.bootstrap_first_org(o, k))).await;
    let winners: Vec<usize> = results
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| r.expect("bootstrap_first_org").then_some(i))
        .collect();
    if was_empty {
        assert_eq!(winners.len(), 1, "exactly one bootstrap wins: {winners:?}");
    } else {
        assert!(
            winners.is_empty(),
            "nobody bootstraps a store with organizations"
        );
    }
    for (i, (o, k)) in racers.iter().enumerate() {
        let won = winners.contains(&i);
        assert_eq!(
            store.get_org(&o.id).await.unwrap().is_some(),
            won,
            "org {i}"
        );
        assert_eq!(
            store.get_api_key(&k.public_key).await.unwrap(),
            won.then(|| k.clone()),
            "key {i}"
        );
    }
    assert!(!store.is_empty().await.unwrap());
    // Once an organization exists, bootstrapping again does nothing.
    let (late_org, late_key) = (org(&ns.org(100)), api_key(ns, 100, &ns.org(100)));
    assert!(
        !store
            .bootstrap_first_org(&late_org, &late_key)
            .await
            .unwrap()
    );
    assert_eq!(store.get_org(&late_org.id).await.unwrap(), None);
}

/// `get_org` and `get_api_key` return exactly what `create_org_with_key` stored.
pub async fn org_and_api_key_round_trip(store: &dyn Store) {
    let ns = Ns(2);
    let org_id = ns.org(0);
    let o = Org {
        id: org_id.clone(),
        name: "Round Trip Org".into(),
        created: T0 + 42,
    };
    let k = ApiKeyRecord {
        id: ns.key_id(0),
        org_id: org_id.clone(),
        public_key: ns.public_key(0),
        sealed_private_key: (0..=255).collect(),
        description: "ünïcode & \"quotes\"".into(),
        org_roles: vec![
            "ORG_OWNER".into(),
            "ORG_BILLING_ADMIN".into(),
            "ORG_MEMBER".into(),
        ],
        created: T0 + 43,
    };
    store.create_org_with_key(&o, &k).await.unwrap();
    assert_eq!(store.get_org(&org_id).await.unwrap(), Some(o));
    assert_eq!(
        store.get_api_key(&k.public_key).await.unwrap(),
        Some(k.clone())
    );

    // A key with no roles and an empty sealed key round-trips as well.
    let org2 = ns.org(1);
    let k2 = ApiKeyRecord {
        org_roles: Vec::new(),
        sealed_private_key: Vec::new(),
        description: String::new(),
        ..api_key(ns, 1, &org2)
    };
    store.create_org_with_key(&org(&org2), &k2).await.unwrap();
    assert_eq!(store.get_api_key(&k2.public_key).await.unwrap(), Some(k2));
    assert_eq!(
        store.get_api_key(&k.public_key).await.unwrap(),
        Some(k),
        "first key untouched"
    );

    assert_eq!(store.get_org(&ns.org(99)).await.unwrap(), None);
    assert_eq!(store.get_api_key(&ns.public_key(99)).await.unwrap(), None);
    // Keys are looked up by public key, not by id.
    assert_eq!(store.get_api_key(&ns.key_id(0)).await.unwrap(), None);
}

/// A failing `create_org_with_key` leaves neither the organization nor the key behind.
pub async fn create_org_with_key_is_atomic(store: &dyn Store) {
    let ns = Ns(3);
    let first = setup_org(store, ns, 0).await;
    let first_key = api_key(ns, 0, &first);

    // New organization, new key id, but a public key that exists already.
    let second = ns.org(1);
    let clash = ApiKeyRecord {
        public_key: first_key.public_key.clone(),
        ..api_key(ns, 1, &second)
    };
    assert_any_conflict(store.create_org_with_key(&org(&second), &clash).await);
    assert_eq!(
        store.get_org(&second).await.unwrap(),
        None,
        "no organization left behind"
    );
    assert_eq!(
        store.get_api_key(&first_key.public_key).await.unwrap(),
        Some(first_key.clone()),
        "the existing key is untouched"
    );

    // New organization, new public key, but a key id that exists already.
    let third = ns.org(2);
    let clash = ApiKeyRecord {
        id: first_key.id.clone(),
        ..api_key(ns, 2, &third)
    };
    assert_any_conflict(store.create_org_with_key(&org(&third), &clash).await);
    assert_eq!(
        store.get_org(&third).await.unwrap(),
        None,
        "no organization left behind"
    );
    assert_eq!(
        store.get_api_key(&clash.public_key).await.unwrap(),
        None,
        "no key left behind"
    );

    // An organization id that exists already, with a brand-new key.
    let fresh_key = api_key(ns, 3, &first);
    let renamed = Org {
        name: "another name".into(),
        ..org(&first)
    };
    assert_any_conflict(store.create_org_with_key(&renamed, &fresh_key).await);
    assert_eq!(
        store.get_org(&first).await.unwrap(),
        Some(org(&first)),
        "organization untouched"
    );
    assert_eq!(
        store.get_api_key(&fresh_key.public_key).await.unwrap(),
        None,
        "no key left behind"
    );

    // After the failures the same organization id can still be created properly.
    store
        .create_org_with_key(&org(&second), &api_key(ns, 1, &second))
        .await
        .unwrap();
    assert_eq!(store.get_org(&second).await.unwrap(), Some(org(&second)));
    assert_eq!(
        store.get_api_key(&ns.public_key(1)).await.unwrap(),
        Some(api_key(ns, 1, &second))
    );
}
