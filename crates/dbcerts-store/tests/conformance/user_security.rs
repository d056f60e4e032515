//! Conformance checks of a project's user-security settings: default, put, overwrite, clear.

use super::*;

/// User-security settings default to unset, and `put` replaces both fields.
pub async fn user_security_default_put_overwrite_clear(store: &dyn Store) {
    let ns = Ns(20);
    let p = setup_project(store, ns, 0).await;
    let other = setup_project(store, ns, 1).await;
    assert_eq!(
        store.get_user_security(&p).await.unwrap(),
        UserSecurityRecord::default()
    );
    assert_eq!(
        store.get_user_security(&ns.project(99)).await.unwrap(),
        UserSecurityRecord::default()
    );

    let both = UserSecurityRecord {
        customer_cas: Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into()),
        ldap_json: Some(r#"{"authenticationEnabled":true,"hostname":"ldap.example"}"#.into()),
    };
    store.put_user_security(&p, &both).await.unwrap();
    assert_eq!(store.get_user_security(&p).await.unwrap(), both);
    assert_eq!(
        store.get_user_security(&other).await.unwrap(),
        UserSecurityRecord::default()
    );

    let replaced = UserSecurityRecord {
        customer_cas: Some("-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n".into()),
        ldap_json: Some("{}".into()),
    };
    store.put_user_security(&p, &replaced).await.unwrap();
    assert_eq!(store.get_user_security(&p).await.unwrap(), replaced);

    // `None` clears a field; it does not mean "leave as is".
    let cas_only = UserSecurityRecord {
        ldap_json: None,
        ..replaced.clone()
    };
    store.put_user_security(&p, &cas_only).await.unwrap();
    assert_eq!(store.get_user_security(&p).await.unwrap(), cas_only);
    let ldap_only = UserSecurityRecord {
        customer_cas: None,
        ldap_json: Some("[]".into()),
    };
    store.put_user_security(&p, &ldap_only).await.unwrap();
    assert_eq!(store.get_user_security(&p).await.unwrap(), ldap_only);
    store
        .put_user_security(&p, &UserSecurityRecord::default())
        .await
        .unwrap();
    assert_eq!(
        store.get_user_security(&p).await.unwrap(),
        UserSecurityRecord::default()
    );

    // An empty string is a value, not an unset field.
    let empty = UserSecurityRecord {
        customer_cas: Some(String::new()),
        ldap_json: None,
    };
    store.put_user_security(&p, &empty).await.unwrap();
    assert_eq!(store.get_user_security(&p).await.unwrap(), empty);

    // Projects are independent.
    store.put_user_security(&other, &both).await.unwrap();
    assert_eq!(store.get_user_security(&p).await.unwrap(), empty);
    assert_eq!(store.get_user_security(&other).await.unwrap(), both);
}
