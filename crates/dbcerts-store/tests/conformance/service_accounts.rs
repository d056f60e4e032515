//! Conformance checks of service accounts, their secrets, grants and access lists, and their
//! authentication bundle.

use super::*;

/// `create_service_account` stores the account with its first secret, read back as stored;
/// client ids are unique (`Conflict("service account")`), and a failed creation leaves nothing
/// behind.
pub async fn service_account_round_trip(store: &dyn Store) {
    let ns = Ns(30);
    let org_id = setup_org(store, ns, 0).await;
    let sa = ServiceAccountRecord {
        name: "CI ✓".into(),
        description: "deploys \"prod\"".into(),
        org_roles: vec!["ORG_MEMBER".into(), "ORG_GROUP_CREATOR".into()],
        ..service_account(ns, 1, &org_id)
    };
    let first = sa_secret(ns, 1, &sa.client_id, T0 + 10);
    store.create_service_account(&sa, &first).await.unwrap();
    assert_eq!(
        store.get_service_account(&sa.client_id).await.unwrap(),
        Some(sa.clone())
    );
    assert_eq!(
        store
            .list_service_account_secrets(&sa.client_id)
            .await
            .unwrap(),
        std::slice::from_ref(&first)
    );

    // No roles, no description; a secret that was used already keeps its last use.
    let bare = ServiceAccountRecord {
        description: String::new(),
        org_roles: Vec::new(),
        ..service_account(ns, 2, &org_id)
    };
    let used = ServiceAccountSecretRecord {
        last_used: Some(T0 + 20),
        ..sa_secret(ns, 2, &bare.client_id, T0 + 11)
    };
    store.create_service_account(&bare, &used).await.unwrap();
    assert_eq!(
        store.get_service_account(&bare.client_id).await.unwrap(),
        Some(bare.clone())
    );
    assert_eq!(
        store
            .list_service_account_secrets(&bare.client_id)
            .await
            .unwrap(),
        [used]
    );

    // The same client id again, with a new secret: a conflict, and nothing of it is stored.
    let dup = ServiceAccountRecord {
        name: "impostor".into(),
        created: T0 + 30,
        ..sa.clone()
    };
    assert_conflict(
        store
            .create_service_account(&dup, &sa_secret(ns, 3, &sa.client_id, T0 + 30))
            .await,
        "service account",
    );
    assert_eq!(
        store.get_service_account(&sa.client_id).await.unwrap(),
        Some(sa.clone()),
        "the existing account is untouched"
    );
    assert_eq!(
        store
            .list_service_account_secrets(&sa.client_id)
            .await
            .unwrap(),
        std::slice::from_ref(&first),
        "the duplicate's secret was not stored"
    );

    // A new account whose first secret cannot be stored (its id is taken) is not created.
    let clashing = service_account(ns, 4, &org_id);
    let taken = ServiceAccountSecretRecord {
        client_id: clashing.client_id.clone(),
        ..first.clone()
    };
    assert_any_conflict(store.create_service_account(&clashing, &taken).await);
    assert_eq!(
        store
            .get_service_account(&clashing.client_id)
            .await
            .unwrap(),
        None,
        "no account left behind"
    );
    assert_eq!(
        store
            .list_service_account_secrets(&sa.client_id)
            .await
            .unwrap(),
        [first]
    );

    // An account needs an existing organization.
    let orphan = service_account(ns, 5, &ns.org(99));
    assert!(
        store
            .create_service_account(&orphan, &sa_secret(ns, 5, &orphan.client_id, T0))
            .await
            .is_err()
    );
    assert_eq!(
        store.get_service_account(&orphan.client_id).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .list_service_account_secrets(&orphan.client_id)
            .await
            .unwrap(),
        []
    );

    assert_eq!(
        store.get_service_account(&ns.client_id(99)).await.unwrap(),
        None
    );
    assert_eq!(
        store.list_service_accounts(&org_id, NO_PAGE).await.unwrap(),
        (vec![sa, bare], 2)
    );
}

/// `list_service_accounts` returns one organization's accounts, oldest first, paged, with the
/// total count.
pub async fn list_service_accounts_filters_orders_and_pages(store: &dyn Store) {
    let ns = Ns(31);
    let org_a = setup_org(store, ns, 0).await;
    let org_b = setup_org(store, ns, 1).await;
    let org_c = setup_org(store, ns, 2).await;

    let account = |n: u64, o: &str, created: i64| ServiceAccountRecord {
        created,
        ..service_account(ns, n, o)
    };
    // (account n, org, created), inserted out of order.
    let specs: [(u64, &str, i64); 6] = [
        (5, &org_a, T0 + 30),
        (2, &org_a, T0 + 10),
        (3, &org_b, T0 + 20),
        (4, &org_a, T0 + 20),
        (6, &org_a, T0 - 5),
        (1, &org_a, T0 + 40),
    ];
    for (n, o, created) in specs {
        store
            .create_service_account(
                &account(n, o, created),
                &sa_secret(ns, n, &ns.client_id(n), created),
            )
            .await
            .unwrap();
    }
    let expected = vec![
        account(6, &org_a, T0 - 5),
        account(2, &org_a, T0 + 10),
        account(4, &org_a, T0 + 20),
        account(5, &org_a, T0 + 30),
        account(1, &org_a, T0 + 40),
    ];
    assert_eq!(
        store.list_service_accounts(&org_a, NO_PAGE).await.unwrap(),
        (expected.clone(), 5),
        "full rows, oldest first"
    );
    assert_eq!(
        store.list_service_accounts(&org_b, NO_PAGE).await.unwrap(),
        (vec![account(3, &org_b, T0 + 20)], 1)
    );
    assert_eq!(
        store.list_service_accounts(&org_c, NO_PAGE).await.unwrap(),
        (Vec::new(), 0)
    );
    assert_eq!(
        store
            .list_service_accounts(&ns.org(99), NO_PAGE)
            .await
            .unwrap(),
        (Vec::new(), 0)
    );

    for (offset, limit) in [
        (0u64, 1u32),
        (0, 2),
        (2, 2),
        (4, 2),
        (3, 100),
        (5, 1),
        (99, 3),
    ] {
        let (got, total) = store
            .list_service_accounts(&org_a, page(offset, limit))
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
            total, 5,
            "total is independent of the page (offset={offset} limit={limit})"
        );
    }

    // Accounts created in the same second: pages still split one stable order.
    for n in 20..27 {
        store
            .create_service_account(
                &account(n, &org_c, T0),
                &sa_secret(ns, n, &ns.client_id(n), T0),
            )
            .await
            .unwrap();
    }
    let (all, total) = store.list_service_accounts(&org_c, NO_PAGE).await.unwrap();
    assert_eq!(total, 7);
    let mut paged = Vec::new();
    for offset in (0..7).step_by(2) {
        paged.extend(
            store
                .list_service_accounts(&org_c, page(offset, 2))
                .await
                .unwrap()
                .0,
        );
    }
    assert_eq!(paged, all, "pages concatenate to the whole list");
    let mut ids: Vec<_> = all.iter().map(|a| a.client_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 7, "every account once");
}

/// `update_service_account` replaces name, description and organization roles of an existing
/// account, and nothing else.
pub async fn update_service_account(store: &dyn Store) {
    let ns = Ns(32);
    let org_id = setup_org(store, ns, 0).await;
    let other_org = setup_org(store, ns, 1).await;
    let sa = service_account(ns, 1, &org_id);
    let neighbour = service_account(ns, 2, &org_id);
    let secret = sa_secret(ns, 1, &sa.client_id, T0);
    store.create_service_account(&sa, &secret).await.unwrap();
    store
        .create_service_account(&neighbour, &sa_secret(ns, 2, &neighbour.client_id, T0))
        .await
        .unwrap();

    let changed = ServiceAccountRecord {
        name: "renamed ✓".into(),
        description: "new description".into(),
        org_roles: vec!["ORG_OWNER".into(), "ORG_READ_ONLY".into()],
        ..sa.clone()
    };
    assert!(
        store.update_service_account(&changed).await.unwrap(),
        "the account existed"
    );
    assert_eq!(
        store.get_service_account(&sa.client_id).await.unwrap(),
        Some(changed.clone())
    );
    assert_eq!(
        store
            .get_service_account(&neighbour.client_id)
            .await
            .unwrap(),
        Some(neighbour),
        "only the addressed account changes"
    );
    assert_eq!(
        store
            .list_service_account_secrets(&sa.client_id)
            .await
            .unwrap(),
        [secret],
        "secrets are untouched"
    );

    // Roles can be emptied; the organization and creation time are not mutable.
    let sneaky = ServiceAccountRecord {
        org_roles: Vec::new(),
        org_id: other_org.clone(),
        created: T0 + 999,
        ..changed.clone()
    };
    assert!(store.update_service_account(&sneaky).await.unwrap());
    assert_eq!(
        store.get_service_account(&sa.client_id).await.unwrap(),
        Some(ServiceAccountRecord {
            org_roles: Vec::new(),
            ..changed
        })
    );
    assert_eq!(
        store
            .list_service_accounts(&other_org, NO_PAGE)
            .await
            .unwrap()
            .1,
        0
    );

    // Missing accounts are not created.
    let missing = service_account(ns, 99, &org_id);
    assert!(
        !store.update_service_account(&missing).await.unwrap(),
        "the account did not exist"
    );
    assert_eq!(
        store.get_service_account(&missing.client_id).await.unwrap(),
        None
    );
}

/// Secrets of an account: added, listed oldest first, touched (`last_used`), and deleted by
/// (client id, secret id) only, once.
pub async fn service_account_secrets_add_list_delete_touch(store: &dyn Store) {
    let ns = Ns(33);
    let org_id = setup_org(store, ns, 0).await;
    let sa = service_account(ns, 1, &org_id);
    let other = service_account(ns, 2, &org_id);
    let first = sa_secret(ns, 1, &sa.client_id, T0 + 10);
    let other_secret = sa_secret(ns, 9, &other.client_id, T0 + 5);
    store.create_service_account(&sa, &first).await.unwrap();
    store
        .create_service_account(&other, &other_secret)
        .await
        .unwrap();

    // Added out of order.
    let third = sa_secret(ns, 3, &sa.client_id, T0 + 30);
    let second = sa_secret(ns, 2, &sa.client_id, T0 + 20);
    store.add_service_account_secret(&third).await.unwrap();
    store.add_service_account_secret(&second).await.unwrap();
    assert_eq!(
        store
            .list_service_account_secrets(&sa.client_id)
            .await
            .unwrap(),
        [first.clone(), second.clone(), third.clone()]
    );
    assert_eq!(
        store
            .list_service_account_secrets(&other.client_id)
            .await
            .unwrap(),
        std::slice::from_ref(&other_secret)
    );

    // A secret id is used once, and a secret needs an existing account.
    assert_any_conflict(
        store
            .add_service_account_secret(&ServiceAccountSecretRecord {
                created: T0 + 40,
                ..second.clone()
            })
            .await,
    );
    assert_any_conflict(
        store
            .add_service_account_secret(&ServiceAccountSecretRecord {
                client_id: sa.client_id.clone(),
                ..other_secret.clone()
            })
            .await,
    );
    assert!(
        store
            .add_service_account_secret(&sa_secret(ns, 4, &ns.client_id(99), T0))
            .await
            .is_err()
    );
    assert_eq!(
        store
            .list_service_account_secrets(&ns.client_id(99))
            .await
            .unwrap(),
        []
    );
    assert_eq!(
        store
            .list_service_account_secrets(&sa.client_id)
            .await
            .unwrap(),
        [first.clone(), second.clone(), third.clone()]
    );

    // Touching records the last use of that one secret; a later touch overwrites it.
    store
        .touch_service_account_secret(&second.id, T0 + 100)
        .await
        .unwrap();
    let touched = |at| ServiceAccountSecretRecord {
        last_used: Some(at),
        ..second.clone()
    };
    assert_eq!(
        store
            .list_service_account_secrets(&sa.client_id)
            .await
            .unwrap(),
        [first.clone(), touched(T0 + 100), third.clone()]
    );
    store
        .touch_service_account_secret(&second.id, T0 + 200)
        .await
        .unwrap();
    store
        .touch_service_account_secret(&ns.secret_id(99), T0 + 200)
        .await
        .unwrap();
    assert_eq!(
        store
            .list_service_account_secrets(&sa.client_id)
            .await
            .unwrap(),
        [first.clone(), touched(T0 + 200), third.clone()]
    );
    assert_eq!(
        store
            .list_service_account_secrets(&other.client_id)
            .await
            .unwrap(),
        std::slice::from_ref(&other_secret),
        "other accounts' secrets are untouched"
    );

    // Deleting needs the secret's own client id.
    assert!(
        !store
            .delete_service_account_secret(&other.client_id, &second.id)
            .await
            .unwrap(),
        "another account cannot delete the secret"
    );
    assert_eq!(
        store
            .list_service_account_secrets(&sa.client_id)
            .await
            .unwrap()
            .len(),
        3
    );
    assert!(
        store
            .delete_service_account_secret(&sa.client_id, &second.id)
            .await
            .unwrap(),
        "the secret existed"
    );
    assert!(
        !store
            .delete_service_account_secret(&sa.client_id, &second.id)
            .await
            .unwrap(),
        "the secret is gone"
    );
    assert!(
        !store
            .delete_service_account_secret(&sa.client_id, &ns.secret_id(99))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .list_service_account_secrets(&sa.client_id)
            .await
            .unwrap(),
        [first.clone(), third.clone()]
    );

    // An account may run out of secrets; it stays.
    for s in [&first, &third] {
        assert!(
            store
                .delete_service_account_secret(&sa.client_id, &s.id)
                .await
                .unwrap()
        );
    }
    assert_eq!(
        store
            .list_service_account_secrets(&sa.client_id)
            .await
            .unwrap(),
        []
    );
    assert_eq!(
        store.get_service_account(&sa.client_id).await.unwrap(),
        Some(sa)
    );
    assert_eq!(
        store
            .list_service_account_secrets(&other.client_id)
            .await
            .unwrap(),
        [other_secret]
    );
}

/// `delete_service_account` deletes the account with its secrets, grants and access list,
/// once, and nothing of any other account.
pub async fn delete_service_account_cascades(store: &dyn Store) {
    let ns = Ns(34);
    let p0 = setup_project(store, ns, 0).await;
    let p1 = setup_project(store, ns, 1).await;
    let org_id = ns.org(0);
    let doomed = service_account(ns, 1, &org_id);
    let kept = service_account(ns, 2, &org_id);
    for (i, sa) in [&doomed, &kept].into_iter().enumerate() {
        let n = 10 * i as u64;
        store
            .create_service_account(sa, &sa_secret(ns, n, &sa.client_id, T0))
            .await
            .unwrap();
        store
            .add_service_account_secret(&sa_secret(ns, n + 1, &sa.client_id, T0 + 1))
            .await
            .unwrap();
        store
            .put_grant(&grant(&sa.client_id, &p0, &["GROUP_OWNER"]))
            .await
            .unwrap();
        store
            .put_grant(&grant(&sa.client_id, &p1, &["GROUP_READ_ONLY"]))
            .await
            .unwrap();
        store
            .add_access_list_entries(&[
                entry(&sa.client_id, "10.0.0.0/8", T0),
                entry(&sa.client_id, "2001:db8::/32", T0),
            ])
            .await
            .unwrap();
    }
    let kept_auth = store
        .get_service_account_auth(&kept.client_id)
        .await
        .unwrap()
        .expect("the kept account exists");

    assert!(
        store
            .delete_service_account(&doomed.client_id)
            .await
            .unwrap(),
        "the account existed"
    );
    assert!(
        !store
            .delete_service_account(&doomed.client_id)
            .await
            .unwrap(),
        "the account is gone"
    );
    assert!(
        !store
            .delete_service_account(&ns.client_id(99))
            .await
            .unwrap()
    );

    assert_eq!(
        store.get_service_account(&doomed.client_id).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .get_service_account_auth(&doomed.client_id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .list_service_account_secrets(&doomed.client_id)
            .await
            .unwrap(),
        []
    );
    assert_eq!(store.list_grants(&doomed.client_id).await.unwrap(), []);
    assert_eq!(store.list_access_list(&doomed.client_id).await.unwrap(), []);

    // The other account keeps everything.
    assert_eq!(
        store
            .get_service_account_auth(&kept.client_id)
            .await
            .unwrap(),
        Some(kept_auth.clone())
    );
    assert_eq!(
        store.list_project_grants(&p0).await.unwrap(),
        [grant(&kept.client_id, &p0, &["GROUP_OWNER"])]
    );
    assert_eq!(
        store.list_service_accounts(&org_id, NO_PAGE).await.unwrap(),
        (vec![kept.clone()], 1)
    );

    // The account can be created again, with the same secret id even, and starts with nothing.
    let fresh = sa_secret(ns, 0, &doomed.client_id, T0 + 50);
    store.create_service_account(&doomed, &fresh).await.unwrap();
    assert_eq!(
        store
            .get_service_account_auth(&doomed.client_id)
            .await
            .unwrap(),
        Some(ServiceAccountAuth {
            account: doomed,
            secrets: vec![fresh],
            grants: Vec::new(),
            access_list: Vec::new(),
        })
    );
    assert_eq!(
        store
            .get_service_account_auth(&kept.client_id)
            .await
            .unwrap(),
        Some(kept_auth)
    );
}

/// `get_service_account_auth` reads an account with its secrets (oldest first), grants
/// (project-id order) and access list (CIDR order), and nothing of any other principal.
pub async fn service_account_auth_bundles_everything(store: &dyn Store) {
    let ns = Ns(35);
    let p1 = setup_project(store, ns, 1).await;
    let p0 = setup_project(store, ns, 0).await;
    let org_id = ns.org(0);
    let sa = service_account(ns, 1, &org_id);
    let s1 = sa_secret(ns, 1, &sa.client_id, T0 + 10);
    let s0 = ServiceAccountSecretRecord {
        last_used: Some(T0 + 15),
        ..sa_secret(ns, 2, &sa.client_id, T0 + 5)
    };
    store.create_service_account(&sa, &s1).await.unwrap();
    store.add_service_account_secret(&s0).await.unwrap();
    let g1 = grant(&sa.client_id, &p1, &["GROUP_OWNER"]);
    let g0 = grant(&sa.client_id, &p0, &["GROUP_READ_ONLY"]);
    store.put_grant(&g1).await.unwrap();
    store.put_grant(&g0).await.unwrap();
    let v6 = entry(&sa.client_id, "2001:db8::/32", T0);
    let v4 = entry(&sa.client_id, "192.0.2.0/24", T0 + 1);
    store
        .add_access_list_entries(&[v6.clone(), v4.clone()])
        .await
        .unwrap();

    // Noise: another account, and an API key, each with a grant and an entry.
    let other = service_account(ns, 2, &org_id);
    store
        .create_service_account(&other, &sa_secret(ns, 3, &other.client_id, T0))
        .await
        .unwrap();
    for principal in [other.client_id.clone(), ns.key_id(0)] {
        store
            .put_grant(&grant(&principal, &p0, &["GROUP_OWNER"]))
            .await
            .unwrap();
        store
            .add_access_list_entries(&[entry(&principal, "198.51.100.0/24", T0)])
            .await
            .unwrap();
    }

    let expected = ServiceAccountAuth {
        account: sa.clone(),
        secrets: vec![s0, s1],
        grants: vec![g0, g1],
        access_list: vec![v4, v6],
    };
    assert_eq!(
        store.get_service_account_auth(&sa.client_id).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        store
            .list_service_account_secrets(&sa.client_id)
            .await
            .unwrap(),
        expected.secrets
    );
    assert_eq!(
        store.list_grants(&sa.client_id).await.unwrap(),
        expected.grants
    );
    assert_eq!(
        store.list_access_list(&sa.client_id).await.unwrap(),
        expected.access_list
    );

    // An account with only its first secret.
    let other_auth = store
        .get_service_account_auth(&other.client_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other_auth.account, other);
    assert_eq!(other_auth.secrets.len(), 1);

    // Unknown client ids, and API key ids, find nothing.
    assert_eq!(
        store
            .get_service_account_auth(&ns.client_id(99))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.get_service_account_auth(&ns.key_id(0)).await.unwrap(),
        None
    );

    // What authentication reads follows later changes.
    store
        .touch_service_account_secret(&expected.secrets[1].id, T0 + 500)
        .await
        .unwrap();
    let auth = store
        .get_service_account_auth(&sa.client_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(auth.secrets[1].last_used, Some(T0 + 500));
    assert_eq!(auth.secrets[0], expected.secrets[0]);
}
