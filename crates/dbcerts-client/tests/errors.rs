//! Errors as the client reports them: Atlas error bodies from a real server, transport
//! failures, input the client refuses to send, and `Debug` output that never shows a secret.

mod common;

use std::time::Duration;

use dbcerts_client::{
    Client, ClientError, Credentials, DatabaseUserRole, ErrorClass, ListOptions, NewApiKey,
    NewDatabaseUser, NewProject, X509Type,
};
use serde_json::Value;

use common::TestServer;

#[tokio::test]
async fn a_missing_project_is_group_not_found() {
    let server = TestServer::start().await;
    let client = server.digest_client();
    let e = client
        .get_group("111111111111111111111111")
        .await
        .expect_err("no such project");
    let ClientError::NotFound(api) = &e else {
        panic!("expected NotFound, got {e:?}");
    };
    assert_eq!(api.status, 404);
    assert_eq!(api.error_code, "GROUP_NOT_FOUND");
    assert_eq!(
        api.detail.as_deref(),
        Some("No group with ID 111111111111111111111111 exists.")
    );
    assert_eq!(api.reason.as_deref(), Some("Not Found"));
    assert_eq!(
        api.parameters,
        vec![Value::from("111111111111111111111111")]
    );
    assert!(api.request_id.is_some(), "the server's request id is kept");
    assert_eq!(e.class(), ErrorClass::NotFound);
    // Lists under a missing project are 404 too.
    let e = client
        .list_database_users("111111111111111111111111", ListOptions::default())
        .await
        .expect_err("no such project");
    assert_eq!(e.error_code(), Some("GROUP_NOT_FOUND"));
}

#[tokio::test]
async fn validation_errors_carry_their_parameters() {
    let server = TestServer::start().await;
    let client = server.digest_client();
    let e = client
        .create_group(&NewProject::new("bad name!", &server.org_id))
        .await
        .expect_err("invalid name");
    let ClientError::Atlas(api) = &e else {
        panic!("expected Atlas, got {e:?}");
    };
    assert_eq!(api.status, 400);
    assert_eq!(api.error_code, "INVALID_GROUP_NAME");
    assert_eq!(api.parameters, vec![Value::from("bad name!")]);
    assert_eq!(api.reason.as_deref(), Some("Bad Request"));
    assert_eq!(e.class(), ErrorClass::Usage);

    let project = client
        .create_group(&NewProject::new("errors", &server.org_id))
        .await
        .expect("create");
    let user = NewDatabaseUser::x509(
        &project.id,
        "alice",
        X509Type::Managed,
        vec![DatabaseUserRole::new("atlasAdmin", "admin")],
    );
    client.create_database_user(&user).await.expect("create");
    let e = client
        .create_database_user(&user)
        .await
        .expect_err("duplicate");
    assert_eq!(e.status(), Some(409));
    assert_eq!(e.error_code(), Some("USER_ALREADY_EXISTS"));
    assert_eq!(e.class(), ErrorClass::Usage);

    let e = client
        .create_database_user_cert(&project.id, "alice", Some(0))
        .await
        .expect_err("zero months");
    assert_eq!(e.error_code(), Some("ATTRIBUTE_NEGATIVE_OR_ZERO"));
    assert_eq!(
        e.api_error().expect("body").parameters,
        vec![Value::from("monthsUntilExpiration")]
    );
    let e = client
        .create_database_user_cert(&project.id, "alice", Some(25))
        .await
        .expect_err("too many months");
    assert_eq!(e.error_code(), Some("CERT_EXPIRY_CANNOT_EXCEED_TWO_YEARS"));

    let e = client
        .create_org_api_key(
            &server.org_id,
            &NewApiKey {
                desc: "x".into(),
                roles: vec!["GROUP_OWNER".into()],
            },
        )
        .await
        .expect_err("a project role is not an organization role");
    assert_eq!(e.error_code(), Some("INVALID_ENUM_VALUE"));
    assert_eq!(
        e.api_error().expect("body").parameters,
        vec![Value::from("GROUP_OWNER")]
    );
}

#[tokio::test]
async fn an_unreachable_server_is_a_transport_error() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let client = Client::builder(&format!("http://{closed}"))
        .credentials(Credentials::api_key("abcdefgh", "x"))
        .no_proxy()
        .build()
        .expect("client");
    let e = client
        .list_groups(ListOptions::default())
        .await
        .expect_err("nothing listens");
    assert!(matches!(e, ClientError::Transport(_)), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Transport);
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    // Accept connections and never answer.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let client = Client::builder(&format!("http://{addr}"))
        .timeout(Duration::from_millis(300))
        .no_proxy()
        .build()
        .expect("client");
    let started = std::time::Instant::now();
    let e = client
        .list_groups(ListOptions::default())
        .await
        .expect_err("no answer");
    assert!(started.elapsed() < Duration::from_secs(5));
    let ClientError::Transport(inner) = &e else {
        panic!("expected Transport, got {e:?}");
    };
    assert!(inner.is_timeout(), "{inner:?}");
    silent.abort();
}

#[tokio::test]
async fn unsendable_input_is_a_usage_error() {
    let server = TestServer::start().await;
    let client = server.digest_client();
    for bad in ["", ".", ".."] {
        let e = client
            .get_database_user("5f1e2d3c4b5a69788796a5b4", "admin", bad)
            .await
            .expect_err("not a path segment");
        assert!(matches!(e, ClientError::InvalidInput(_)), "{e:?}");
        assert_eq!(e.class(), ErrorClass::Usage);
    }
    assert_eq!(server.counters.requests(), 0, "nothing was sent");
    let e = Client::builder("dbcerts.example.com")
        .build()
        .expect_err("no scheme");
    assert_eq!(e.class(), ErrorClass::Usage);
}

#[tokio::test]
async fn debug_output_never_shows_a_secret() {
    let server = TestServer::start().await;
    let client = server.digest_client();
    let mut secrets = vec![server.private_key.clone()];
    let mut shown = vec![format!("{client:?}")];
    shown.push(format!(
        "{:?}",
        Credentials::api_key(&server.public_key, server.private_key.as_str())
    ));

    let project = client
        .create_group(&NewProject::new("secrets", &server.org_id))
        .await
        .expect("create");
    client
        .create_database_user(&NewDatabaseUser::x509(
            &project.id,
            "bob",
            X509Type::Managed,
            vec![DatabaseUserRole::new("atlasAdmin", "admin")],
        ))
        .await
        .expect("create user");
    let issued = client
        .create_database_user_cert(&project.id, "bob", None)
        .await
        .expect("cert");
    let key_body: String = issued
        .private_key_pem()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(key_body.len() > 40);
    secrets.push(key_body);
    shown.push(format!("{issued:?}"));
    assert!(
        shown
            .last()
            .is_some_and(|s| s.contains("BEGIN CERTIFICATE"))
    );

    let key = client
        .create_org_api_key(
            &server.org_id,
            &NewApiKey {
                desc: "shown once".into(),
                roles: vec!["ORG_MEMBER".into()],
            },
        )
        .await
        .expect("key");
    secrets.push(key.private_key.expose().to_owned());
    shown.push(format!("{key:?} {:?}", key.credentials()));

    let (sa_client, creds) = server.service_account_client().await;
    let Credentials::ServiceAccount { secret, .. } = &creds else {
        unreachable!("a service account");
    };
    secrets.push(secret.expose().to_owned());
    shown.push(format!("{creds:?} {sa_client:?}"));
    let token = sa_client.access_token().await.expect("token");
    secrets.push(token.expose().to_owned());
    shown.push(format!("{token:?}"));
    let scram = NewDatabaseUser::scram(&project.id, "carol", "a long password", vec![]);
    secrets.push("a long password".into());
    shown.push(format!("{scram:?}"));

    for text in &shown {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{text}");
        }
    }
}

#[tokio::test]
async fn a_rate_limited_call_waits_as_retry_after_says_when_asked_to() {
    let server = TestServer::start_with(common::Options {
        certs_per_minute: Some(60),
        ..common::Options::default()
    })
    .await;
    let plain = server.digest_client();
    let project = plain
        .create_group(&NewProject::new("limited", &server.org_id))
        .await
        .expect("project");
    plain
        .create_database_user(&NewDatabaseUser::x509(
            &project.id,
            "alice",
            X509Type::Managed,
            vec![DatabaseUserRole::new("read", "sales")],
        ))
        .await
        .expect("user");
    // Use up the minute's allowance (60, one more a second).
    let mut limited = None;
    for _ in 0..70 {
        match plain
            .list_database_user_certs(&project.id, "alice", ListOptions::default())
            .await
        {
            Ok(_) => {}
            Err(e) => {
                limited = Some(e);
                break;
            }
        }
    }
    let e = limited.expect("the limit is reached");
    assert_eq!(e.error_code(), Some("RATE_LIMITED"));
    assert_eq!(e.class(), ErrorClass::Server);
    // A client that may wait gets through after Retry-After (1 s here), POST included.
    let patient = Client::builder(&server.base_url)
        .credentials(Credentials::api_key(
            &server.public_key,
            server.private_key.as_str(),
        ))
        .retry_rate_limited(Duration::from_secs(10))
        .build()
        .expect("client");
    let started = std::time::Instant::now();
    patient
        .create_database_user_cert(&project.id, "alice", Some(1))
        .await
        .expect("issued after waiting");
    assert!(started.elapsed() >= Duration::from_millis(500), "it waited");
    assert_eq!(
        patient
            .list_all_database_user_certs(&project.id, "alice")
            .await
            .map(|c| c.len())
            .unwrap_or_else(|e| panic!("{e}")),
        1,
        "exactly one certificate, though the POST was sent more than once"
    );
}
