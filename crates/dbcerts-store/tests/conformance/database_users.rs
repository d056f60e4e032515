//! Conformance checks of database users: round trip, unique key, listing, update, delete and
//! the per-project user limit.

use super::*;

/// `get_database_user` returns exactly what `create_database_user` stored, by full key only.
pub async fn database_user_round_trip(store: &dyn Store) {
    let ns = Ns(12);
    let p = setup_project(store, ns, 0).await;
    let other = setup_project(store, ns, 1).await;
    let u = DatabaseUserRecord {
        project_id: p.clone(),
        database_name: "$external".into(),
        username: "CN=alice,OU=eng,O=Example".into(),
        x509_type: "CUSTOMER".into(),
        created: T0 + 3,
        doc: r#"{"roles":[{"roleName":"readWrite","databaseName":"app"}],"labels":[]}"#.into(),
    };
    store.create_database_user(&u).await.unwrap();
    assert_eq!(
        store
            .get_database_user(&p, "$external", &u.username)
            .await
            .unwrap(),
        Some(u.clone())
    );
    assert_eq!(
        store
            .get_database_user(&p, "admin", &u.username)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get_database_user(&p, "$external", "CN=alice")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get_database_user(&other, "$external", &u.username)
            .await
            .unwrap(),
        None
    );
}

/// (project, databaseName, username) is unique.
pub async fn database_user_unique_key(store: &dyn Store) {
    let ns = Ns(13);
    let p = setup_project(store, ns, 0).await;
    let other = setup_project(store, ns, 1).await;
    let original = user(&p, "admin", "carol", T0);
    store.create_database_user(&original).await.unwrap();

    let dup = DatabaseUserRecord {
        x509_type: "NONE".into(),
        created: T0 + 9,
        doc: "{}".into(),
        ..original.clone()
    };
    assert_conflict(store.create_database_user(&dup).await, "database user");
    assert_eq!(
        store.get_database_user(&p, "admin", "carol").await.unwrap(),
        Some(original.clone())
    );
    assert_eq!(store.count_database_users(&p).await.unwrap(), 1);

    // The same username on another database, or in another project, is another user.
    let other_db = user(&p, "$external", "carol", T0 + 1);
    store.create_database_user(&other_db).await.unwrap();
    let other_project = user(&other, "admin", "carol", T0 + 2);
    store.create_database_user(&other_project).await.unwrap();
    assert_eq!(
        store
            .get_database_user(&p, "$external", "carol")
            .await
            .unwrap(),
        Some(other_db)
    );
    assert_eq!(
        store
            .get_database_user(&other, "admin", "carol")
            .await
            .unwrap(),
        Some(other_project)
    );
    assert_eq!(
        store.get_database_user(&p, "admin", "carol").await.unwrap(),
        Some(original)
    );
    assert_eq!(store.count_database_users(&p).await.unwrap(), 2);
}

/// `list_database_users` orders by (created, databaseName, username), pages, and counts all.
pub async fn list_database_users_orders_and_pages(store: &dyn Store) {
    let ns = Ns(14);
    let p = setup_project(store, ns, 0).await;
    let other = setup_project(store, ns, 1).await;
    let empty = setup_project(store, ns, 2).await;

    // Inserted out of order; ties on `created`, then on database name.
    let users = [
        user(&p, "admin", "zed", T0 + 5),
        user(&p, "admin", "amy", T0 + 5),
        user(&p, "$external", "zed", T0 + 5),
        user(&p, "admin", "old", T0 + 1),
        user(&p, "admin", "new", T0 + 9),
        user(&p, "$external", "CN=x", T0 + 5),
    ];
    for u in &users {
        store.create_database_user(u).await.unwrap();
    }
    store
        .create_database_user(&user(&other, "admin", "stranger", T0))
        .await
        .unwrap();

    let expected = vec![
        users[3].clone(), // created T0+1
        users[5].clone(), // T0+5, $external, CN=x
        users[2].clone(), // T0+5, $external, zed
        users[1].clone(), // T0+5, admin, amy
        users[0].clone(), // T0+5, admin, zed
        users[4].clone(), // T0+9
    ];
    assert_eq!(
        store.list_database_users(&p, NO_PAGE).await.unwrap(),
        (expected.clone(), 6)
    );
    assert_eq!(store.count_database_users(&p).await.unwrap(), 6);

    for (offset, limit) in [
        (0u64, 1u32),
        (0, 2),
        (2, 2),
        (4, 2),
        (5, 10),
        (6, 1),
        (50, 50),
    ] {
        let (got, total) = store
            .list_database_users(&p, page(offset, limit))
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
            "total is independent of the page (offset={offset} limit={limit})"
        );
    }

    assert_eq!(store.count_database_users(&other).await.unwrap(), 1);
    assert_eq!(
        store.list_database_users(&empty, NO_PAGE).await.unwrap(),
        (Vec::new(), 0)
    );
    assert_eq!(store.count_database_users(&empty).await.unwrap(), 0);
    assert_eq!(
        store.count_database_users(&ns.project(99)).await.unwrap(),
        0
    );
    assert_eq!(
        store
            .list_database_users(&ns.project(99), NO_PAGE)
            .await
            .unwrap(),
        (Vec::new(), 0)
    );
}

/// `update_database_user` replaces x509Type and the document of an existing user only.
pub async fn update_database_user(store: &dyn Store) {
    let ns = Ns(15);
    let p = setup_project(store, ns, 0).await;
    let original = user(&p, "admin", "dave", T0);
    let neighbour = user(&p, "$external", "dave", T0);
    store.create_database_user(&original).await.unwrap();
    store.create_database_user(&neighbour).await.unwrap();

    let changed = DatabaseUserRecord {
        x509_type: "NONE".into(),
        doc: r#"{"roles":[{"roleName":"atlasAdmin","databaseName":"admin"}]}"#.into(),
        ..original.clone()
    };
    assert!(
        store.update_database_user(&changed).await.unwrap(),
        "the user existed"
    );
    assert_eq!(
        store.get_database_user(&p, "admin", "dave").await.unwrap(),
        Some(changed.clone())
    );
    assert_eq!(
        store
            .get_database_user(&p, "$external", "dave")
            .await
            .unwrap(),
        Some(neighbour),
        "only the addressed user changes"
    );

    // The creation time is not a mutable field.
    let later = DatabaseUserRecord {
        created: T0 + 500,
        x509_type: "MANAGED".into(),
        ..changed.clone()
    };
    assert!(store.update_database_user(&later).await.unwrap());
    let got = store
        .get_database_user(&p, "admin", "dave")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.x509_type, "MANAGED");
    assert_eq!(got.created, T0, "created is kept");

    // Missing users are not created.
    let missing = user(&p, "admin", "nobody", T0);
    assert!(
        !store.update_database_user(&missing).await.unwrap(),
        "the user did not exist"
    );
    assert_eq!(
        store
            .get_database_user(&p, "admin", "nobody")
            .await
            .unwrap(),
        None
    );
    let missing_project = user(&ns.project(99), "admin", "dave", T0);
    assert!(!store.update_database_user(&missing_project).await.unwrap());
    assert_eq!(store.count_database_users(&p).await.unwrap(), 2);
}

/// `delete_database_user` deletes exactly the addressed user, once.
pub async fn delete_database_user(store: &dyn Store) {
    let ns = Ns(16);
    let p = setup_project(store, ns, 0).await;
    let other = setup_project(store, ns, 1).await;
    store
        .create_database_user(&user(&p, "admin", "erin", T0))
        .await
        .unwrap();
    store
        .create_database_user(&user(&p, "$external", "erin", T0))
        .await
        .unwrap();
    store
        .create_database_user(&user(&other, "admin", "erin", T0))
        .await
        .unwrap();

    assert!(
        store
            .delete_database_user(&p, "admin", "erin")
            .await
            .unwrap(),
        "the user existed"
    );
    assert!(
        !store
            .delete_database_user(&p, "admin", "erin")
            .await
            .unwrap(),
        "the user is gone"
    );
    assert!(
        !store
            .delete_database_user(&p, "admin", "nobody")
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_database_user(&ns.project(99), "admin", "erin")
            .await
            .unwrap()
    );

    assert_eq!(
        store.get_database_user(&p, "admin", "erin").await.unwrap(),
        None
    );
    assert!(
        store
            .get_database_user(&p, "$external", "erin")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .get_database_user(&other, "admin", "erin")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.count_database_users(&p).await.unwrap(), 1);
    let (listed, total) = store.list_database_users(&p, NO_PAGE).await.unwrap();
    assert_eq!(
        (listed, total),
        (vec![user(&p, "$external", "erin", T0)], 1)
    );

    // The user can be created again.
    store
        .create_database_user(&user(&p, "admin", "erin", T0 + 1))
        .await
        .unwrap();
    assert_eq!(store.count_database_users(&p).await.unwrap(), 2);
}

/// `create_database_user_within_limit` counts and inserts atomically: 12 concurrent creations
/// against a limit of 5 leave exactly 5 users, and an existing user is still a conflict.
pub async fn database_user_limit_is_atomic(store: &dyn Store) {
    let ns = Ns(40);
    let p = setup_project(store, ns, 0).await;
    let attempts = (0..12).map(|i| {
        let u = user(&p, "$external", &format!("u{i:02}"), T0 + i);
        async move { store.create_database_user_within_limit(&u, 5).await }
    });
    let results = futures_join_all(attempts).await;
    let created = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(created, 5, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(()) | Err(StoreError::LimitReached))),
        "{results:?}"
    );
    assert_eq!(store.count_database_users(&p).await.unwrap(), 5);
    let (listed, _) = store.list_database_users(&p, NO_PAGE).await.unwrap();
    let existing = listed[0].clone();
    assert!(matches!(
        store
            .create_database_user_within_limit(&existing, 100)
            .await,
        Err(StoreError::Conflict("database user"))
    ));
    assert!(matches!(
        store
            .create_database_user_within_limit(&user(&p, "admin", "one-more", T0), 5)
            .await,
        Err(StoreError::LimitReached)
    ));
    assert!(
        store
            .create_database_user_within_limit(&user(&p, "admin", "one-more", T0), 6)
            .await
            .is_ok()
    );
}
