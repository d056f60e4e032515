//! Authentication against a real server: Digest nonce reuse, stale-nonce recovery and wrong
//! keys; OAuth token caching, renewal before expiry, replacement after a 401, and refused
//! credentials. What the client made the server do is counted at the server's edge.

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use dbcerts_client::{ClientError, Credentials, ErrorClass, ListOptions, NewProject};

use common::{Options, TestServer};

#[tokio::test]
async fn ten_calls_cost_one_digest_challenge() {
    let server = TestServer::start().await;
    let client = server.digest_client();
    for _ in 0..10 {
        client
            .list_groups(ListOptions::default())
            .await
            .expect("list projects");
    }
    assert_eq!(server.counters.challenges(), 1, "the nonce is reused");
    assert_eq!(server.counters.requests(), 11);
    assert_eq!(server.counters.stale(), 0);
}

#[tokio::test]
async fn a_first_call_with_a_body_is_replayed_after_the_challenge() {
    let server = TestServer::start().await;
    let client = server.digest_client();
    let project = client
        .create_group(&NewProject::new("first-call", &server.org_id))
        .await
        .expect("a POST as the very first call");
    assert_eq!(project.name, "first-call");
    assert_eq!(server.counters.requests(), 2);
    assert_eq!(server.counters.challenges(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_never_race_on_a_nonce() {
    let server = TestServer::start().await;
    let client = server.digest_client();
    let project = client
        .create_group(&NewProject::new("shared", &server.org_id))
        .await
        .expect("create");
    let wave = || {
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let client = client.clone();
                let id = project.id.clone();
                tokio::spawn(async move { client.get_group(&id).await })
            })
            .collect();
        async move {
            for t in tasks {
                t.await
                    .expect("task")
                    .expect("every concurrent call succeeds");
            }
        }
    };
    wave().await;
    wave().await;
    // Each request in flight holds its own nonce, so counts never arrive out of order; a new
    // challenge is needed only when every cached one is in use, so there are never more
    // challenges than requests that were in flight together.
    assert_eq!(server.counters.stale(), 0);
    let challenges = server.counters.challenges();
    assert!((1..=20).contains(&challenges), "{challenges}");
    for _ in 0..5 {
        client.get_group(&project.id).await.expect("sequential");
    }
    assert_eq!(server.counters.challenges(), challenges);
}

#[tokio::test]
async fn a_stale_nonce_is_renewed_once() {
    let server = TestServer::start_with(Options {
        nonce_lifetime_secs: 1,
        ..Options::default()
    })
    .await;
    let client = server.digest_client();
    client
        .list_groups(ListOptions::default())
        .await
        .expect("first call");
    assert_eq!(server.counters.challenges(), 1);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    client
        .list_groups(ListOptions::default())
        .await
        .expect("a call with an expired nonce recovers");
    assert_eq!(server.counters.stale(), 1, "the server said stale=true");
    assert_eq!(server.counters.challenges(), 2);
    client
        .list_groups(ListOptions::default())
        .await
        .expect("the new nonce is reused");
    assert_eq!(server.counters.challenges(), 2);
    // 2 + 2 + 1 requests: no retry beyond the one re-authentication.
    assert_eq!(server.counters.requests(), 5);
}

#[tokio::test]
async fn a_wrong_private_key_is_an_authentication_error() {
    let server = TestServer::start().await;
    let client = server.client(Credentials::api_key(
        server.public_key.clone(),
        "00000000-0000-4000-8000-000000000000",
    ));
    let e = client
        .list_groups(ListOptions::default())
        .await
        .expect_err("wrong key");
    assert!(matches!(e, ClientError::Auth(_)), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Auth);
    assert_eq!(e.status(), Some(401));
    assert_eq!(e.error_code(), Some("UNEXPECTED_ERROR"));
    let api = e.api_error().expect("Atlas body");
    assert_eq!(
        api.detail.as_deref(),
        Some("You are not authorized for this resource.")
    );
    // The challenge and one answer; a fresh nonce refused without stale=true is final.
    assert_eq!(server.counters.requests(), 2);
}

#[tokio::test]
async fn a_token_is_cached_and_renewed_before_it_expires() {
    let server = TestServer::start_with(Options {
        token_lifetime_secs: 3,
        ..Options::default()
    })
    .await;
    let (client, _) = server.service_account_client().await;
    let unauthorized_before = server.counters.unauthorized();
    let start = Instant::now();
    let at = |secs: f64| tokio::time::sleep_until((start + Duration::from_secs_f64(secs)).into());
    // A 3 s token is renewed 1 s before it expires (servers count whole seconds).
    for t in [0.0, 0.5, 1.0] {
        at(t).await;
        client
            .list_groups(ListOptions::default())
            .await
            .expect("call with the first token");
    }
    assert_eq!(server.counters.token_requests(), 1, "the token is cached");
    for t in [2.5, 3.0, 3.5] {
        at(t).await;
        client
            .list_groups(ListOptions::default())
            .await
            .expect("call with the second token");
    }
    assert_eq!(server.counters.token_requests(), 2, "renewed once");
    assert_eq!(
        server.counters.unauthorized(),
        unauthorized_before,
        "renewed before the server refused the first token"
    );
}

#[tokio::test]
async fn a_refused_cached_token_is_replaced_once() {
    let server = TestServer::start().await;
    let (client, creds) = server.service_account_client().await;
    client
        .list_groups(ListOptions::default())
        .await
        .expect("first call");
    let token = client.access_token().await.expect("the cached token");
    assert_eq!(server.counters.token_requests(), 1);
    // Revoke the token behind the client's back, as another process holding it might.
    let Credentials::ServiceAccount { client_id, secret } = &creds else {
        unreachable!("a service account");
    };
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{client_id}:{}", secret.expose()));
    let res = reqwest::Client::new()
        .post(format!("{}/api/oauth/revoke", server.base_url))
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", token.expose()))
        .send()
        .await
        .expect("revoke");
    assert_eq!(res.status(), 200);
    let unauthorized_before = server.counters.unauthorized();
    client
        .list_groups(ListOptions::default())
        .await
        .expect("the client fetches a new token and retries");
    assert_eq!(server.counters.unauthorized() - unauthorized_before, 1);
    assert_eq!(server.counters.token_requests(), 2);
    // Revoking through the client forgets the token: the next call fetches one, with no 401.
    client.revoke_access_token().await.expect("revoke");
    client
        .list_groups(ListOptions::default())
        .await
        .expect("call after revocation");
    assert_eq!(server.counters.token_requests(), 3);
    assert_eq!(server.counters.unauthorized() - unauthorized_before, 1);
}

#[tokio::test]
async fn a_token_handed_to_a_later_client_is_used_until_it_is_due() {
    let server = TestServer::start().await;
    let (first, creds) = server.service_account_client().await;
    assert!(
        first.cached_token().await.is_none(),
        "no token before a call"
    );
    first
        .list_groups(ListOptions::default())
        .await
        .expect("first call");
    let kept = first.cached_token().await.expect("a cached token");
    assert!(kept.renew_at > std::time::SystemTime::now());
    assert!(!format!("{kept:?}").contains(kept.token.expose()));
    assert_eq!(server.counters.token_requests(), 1);
    // A later process starts with the kept token: no token request.
    let second = dbcerts_client::Client::builder(&server.base_url)
        .credentials(creds.clone())
        .cached_token(kept.clone())
        .build()
        .expect("client");
    second
        .list_groups(ListOptions::default())
        .await
        .expect("call with the kept token");
    assert_eq!(server.counters.token_requests(), 1);
    // A kept token already due is not used.
    let due = dbcerts_client::CachedToken {
        token: kept.token.clone(),
        renew_at: std::time::SystemTime::now() - Duration::from_secs(1),
    };
    let third = dbcerts_client::Client::builder(&server.base_url)
        .credentials(creds)
        .cached_token(due)
        .build()
        .expect("client");
    third
        .list_groups(ListOptions::default())
        .await
        .expect("call with a new token");
    assert_eq!(server.counters.token_requests(), 2);
    let renewed = third.cached_token().await.expect("the new token");
    assert_ne!(renewed.token.expose(), kept.token.expose());
}

#[tokio::test]
async fn a_missing_role_does_not_cost_a_new_token() {
    let server = TestServer::start().await;
    let (client, _) = server.service_account_with_role("ORG_MEMBER").await;
    let e = client
        .create_group(&NewProject::new("not-allowed", &server.org_id))
        .await
        .expect_err("a member cannot create projects");
    assert_eq!(e.class(), ErrorClass::Auth);
    assert_eq!(e.error_code(), Some("NOT_ORG_GROUP_CREATOR"));
    assert_eq!(
        e.api_error().expect("body").parameters,
        vec![serde_json::Value::from(server.org_id.clone())]
    );
    assert_eq!(server.counters.token_requests(), 1);
}

#[tokio::test]
async fn a_wrong_client_secret_is_an_authentication_error() {
    let server = TestServer::start().await;
    let (_, creds) = server.service_account_client().await;
    let Credentials::ServiceAccount { client_id, .. } = creds else {
        unreachable!("a service account");
    };
    let client = server.client(Credentials::service_account(
        client_id,
        "mdb_sa_sk_not-the-secret",
    ));
    let e = client
        .list_groups(ListOptions::default())
        .await
        .expect_err("wrong secret");
    assert_eq!(e.class(), ErrorClass::Auth);
    assert_eq!(e.status(), Some(401));
    assert_eq!(e.error_code(), Some("invalid_client"));
    assert_eq!(
        e.api_error().and_then(|a| a.detail.as_deref()),
        Some("Invalid credentials provided.")
    );
    assert_eq!(server.counters.token_requests(), 1, "no retry loop");
    assert!(!format!("{e:?} {e}").contains("not-the-secret"));
}
