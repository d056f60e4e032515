//! Every typed operation, end to end over a real socket against a real server, one test per
//! operation group (projects, database users, certificates and the project CA, user security,
//! API keys, service accounts), each on a fresh server with its own fixtures, and each twice:
//! with an API key (Digest) and with a service account (OAuth bearer token).

mod common;

use std::collections::BTreeSet;

use chrono::Duration;
use dbcerts_client::{
    AccessListRequest, ApiKeyUpdate, Client, ClientError, DatabaseUserRole, DatabaseUserUpdate,
    ErrorClass, IssuedCertificate, LdapSettings, ListOptions, NewApiKey, NewDatabaseUser,
    NewProject, NewServiceAccount, Pages, ServiceAccountUpdate, UserScope, UserSecurityUpdate,
    X509Type,
};
use x509_parser::prelude::{FromDer, X509Certificate};

use common::TestServer;

/// A MANAGED user name with every character that needs care in a path: `/`, `%`, `?`, `#`,
/// `&`, spaces and non-ASCII.
const MANAGED_USER: &str = "ops/team%41 dé 名?x#y&z";
/// A SCRAM user name with `+` and an encoded-looking `%2F` as well.
const SCRAM_USER: &str = "we+ird/user %2F ü";

fn code(e: &ClientError) -> &str {
    e.error_code().unwrap_or("")
}

fn expect_not_found<T: std::fmt::Debug>(r: Result<T, ClientError>, want: &str) {
    let e = r.expect_err("expected 404");
    assert!(matches!(e, ClientError::NotFound(_)), "{e:?}");
    assert_eq!(e.class(), ErrorClass::NotFound);
    assert_eq!(code(&e), want, "{e}");
}

fn serial_of(cert: &X509Certificate<'_>) -> i64 {
    cert.raw_serial()
        .iter()
        .fold(0i64, |acc, b| (acc << 8) | i64::from(*b))
}

fn parse_pem_cert(text: &str) -> Vec<u8> {
    let block = pem::parse(text).expect("PEM");
    assert_eq!(block.tag(), "CERTIFICATE");
    block.contents().to_vec()
}

/// Checks the bundle: a certificate for `username` issued by the project's CA, then an
/// unencrypted PKCS#8 key whose public half is the certificate's.
fn check_issued(issued: &IssuedCertificate, username: &str, group_id: &str) -> (i64, i64) {
    let blocks = pem::parse_many(issued.pem()).expect("PEM bundle");
    let tags: Vec<&str> = blocks.iter().map(|b| b.tag()).collect();
    assert_eq!(tags, ["CERTIFICATE", "PRIVATE KEY"]);
    let der = parse_pem_cert(issued.certificate_pem());
    let (rest, cert) = X509Certificate::from_der(&der).expect("X.509");
    assert!(rest.is_empty());
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .expect("subject CN");
    assert_eq!(cn, username);
    let issuer_cn = cert
        .issuer()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .expect("issuer CN");
    assert_eq!(issuer_cn, group_id);
    let key = pem::parse(issued.private_key_pem()).expect("key PEM");
    assert_eq!(key.tag(), "PRIVATE KEY");
    let pair = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        key.contents(),
    )
    .expect("an unencrypted PKCS#8 P-256 key");
    use aws_lc_rs::signature::KeyPair;
    assert_eq!(
        pair.public_key().as_ref(),
        &*cert.public_key().subject_public_key.data,
        "the key belongs to the certificate"
    );
    (serial_of(&cert), cert.validity().not_after.timestamp())
}

/// The ids of `projects`, in order.
fn ids(projects: &[dbcerts_client::Project]) -> Vec<String> {
    projects.iter().map(|p| p.id.clone()).collect()
}

/// The MANAGED user [`MANAGED_USER`] of `group_id`, with a description, a label and a scope.
fn managed_user(group_id: &str) -> NewDatabaseUser {
    NewDatabaseUser {
        description: Some("certificate user".into()),
        labels: Some(vec![dbcerts_client::ComponentLabel {
            key: Some("team".into()),
            value: Some("ops".into()),
        }]),
        scopes: Some(vec![UserScope {
            name: "Cluster0".into(),
            kind: "CLUSTER".into(),
        }]),
        ..NewDatabaseUser::x509(
            group_id,
            MANAGED_USER,
            X509Type::Managed,
            vec![DatabaseUserRole::new("atlasAdmin", "admin")],
        )
    }
}

/// Creates project `name` in the server's organization.
async fn project(client: &Client, server: &TestServer, name: String) -> dbcerts_client::Project {
    client
        .create_group(&NewProject::new(name, &server.org_id))
        .await
        .expect("create project")
}

/// Project `ops-<tag>` with [`managed_user`] in it: the fixture of the certificate and
/// user-security groups.
async fn project_with_managed_user(
    client: &Client,
    server: &TestServer,
    tag: &str,
) -> dbcerts_client::Project {
    let p1 = project(client, server, format!("ops-{tag}")).await;
    client
        .create_database_user(&managed_user(&p1.id))
        .await
        .expect("create managed user");
    p1
}

/// Projects: create, get, list a page, list all, page through, delete.
async fn projects(client: &Client, server: &TestServer, tag: &str) {
    let org = server.org_id.as_str();
    let p1 = client
        .create_group(&NewProject::new(format!("ops-{tag}"), org))
        .await
        .expect("create project");
    assert_eq!(p1.name, format!("ops-{tag}"));
    assert_eq!(p1.org_id, org);
    assert!(p1.links.iter().any(|l| l.rel == "self"));
    let donor = client
        .create_group(&NewProject::new(format!("ca-donor-{tag}"), org))
        .await
        .expect("create project");
    let mut extra = Vec::new();
    for i in 0..3 {
        extra.push(
            client
                .create_group(&NewProject::new(format!("paging-{tag}-{i}"), org))
                .await
                .expect("create project")
                .id,
        );
    }
    let got = client.get_group(&p1.id).await.expect("get project");
    assert_eq!(
        (got.id.as_str(), got.name.as_str()),
        (p1.id.as_str(), p1.name.as_str())
    );

    let first = client
        .list_groups(ListOptions::page(1, 2))
        .await
        .expect("list page 1");
    assert_eq!(first.results.len(), 2);
    assert!(first.total_count >= 5, "{}", first.total_count);
    assert!(first.has_next());
    let all = client.list_all_groups().await.expect("list all");
    assert_eq!(all.len() as u64, first.total_count);
    let paged = Pages::new(2, |o| client.list_groups(o))
        .collect_all()
        .await
        .expect("pages of two");
    assert_eq!(
        ids(&paged),
        ids(&all),
        "paging returns every project once, in order"
    );
    for id in [&p1.id, &donor.id] {
        assert!(all.iter().any(|p| &p.id == id));
    }
    for id in extra {
        client.delete_group(&id).await.expect("delete project");
        expect_not_found(client.get_group(&id).await, "GROUP_NOT_FOUND");
    }
}

/// Database users: MANAGED (with a name that needs escaping in a path) and SCRAM; create, get,
/// update, list, list all, delete.
async fn database_users(client: &Client, server: &TestServer, tag: &str) {
    let p1 = project(client, server, format!("ops-{tag}")).await;
    let managed = managed_user(&p1.id);
    let created = client
        .create_database_user(&managed)
        .await
        .expect("create managed user");
    assert_eq!(created.username, MANAGED_USER);
    assert_eq!(created.x509_type, X509Type::Managed);
    assert_eq!(created.database_name, "$external");
    assert_eq!(created.group_id, p1.id);
    let fetched = client
        .get_database_user(&p1.id, "$external", MANAGED_USER)
        .await
        .expect("get managed user");
    assert_eq!(fetched, created, "the name round-trips through the path");
    assert_eq!(fetched.scopes[0].name, "Cluster0");
    assert_eq!(fetched.labels[0].value.as_deref(), Some("ops"));
    let updated = client
        .update_database_user(
            &p1.id,
            "$external",
            MANAGED_USER,
            &DatabaseUserUpdate {
                description: Some("rotated".into()),
                roles: Some(vec![DatabaseUserRole::new("readWriteAnyDatabase", "admin")]),
                x509_type: Some(X509Type::Managed),
                ..DatabaseUserUpdate::default()
            },
        )
        .await
        .expect("update user");
    assert_eq!(updated.description.as_deref(), Some("rotated"));
    assert_eq!(updated.roles[0].role_name, "readWriteAnyDatabase");

    let scram = client
        .create_database_user(&NewDatabaseUser::scram(
            &p1.id,
            SCRAM_USER,
            "correct horse battery",
            vec![DatabaseUserRole::new("read", "admin")],
        ))
        .await
        .expect("create SCRAM user");
    assert_eq!(scram.username, SCRAM_USER);
    let again = client
        .get_database_user(&p1.id, "admin", SCRAM_USER)
        .await
        .expect("get SCRAM user");
    assert_eq!(again.username, SCRAM_USER);
    let users = client
        .list_database_users(&p1.id, ListOptions::default())
        .await
        .expect("list users");
    assert_eq!(users.total_count, 2);
    let names: BTreeSet<_> = client
        .list_all_database_users(&p1.id)
        .await
        .expect("list all users")
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([MANAGED_USER.to_owned(), SCRAM_USER.to_owned()])
    );
    client
        .delete_database_user(&p1.id, "admin", SCRAM_USER)
        .await
        .expect("delete SCRAM user");
    expect_not_found(
        client.get_database_user(&p1.id, "admin", SCRAM_USER).await,
        "USERNAME_NOT_FOUND",
    );
    client
        .delete_database_user(&p1.id, "$external", MANAGED_USER)
        .await
        .expect("delete managed user");
    expect_not_found(
        client
            .get_database_user(&p1.id, "$external", MANAGED_USER)
            .await,
        "USERNAME_NOT_FOUND",
    );
}

/// Certificates and the project CA: issue (with and without a lifetime), the project CA, list a
/// page, list all, and the expiring-certificates sweep.
async fn certificates(client: &Client, server: &TestServer, tag: &str) {
    let p1 = project_with_managed_user(client, server, tag).await;
    let issued = client
        .create_database_user_cert(&p1.id, MANAGED_USER, Some(2))
        .await
        .expect("create cert");
    let (serial, not_after) = check_issued(&issued, MANAGED_USER, &p1.id);
    let ca_pem = client.get_project_ca(&p1.id).await.expect("project CA");
    let ca_der = parse_pem_cert(&ca_pem);
    let (_, ca) = X509Certificate::from_der(&ca_der).expect("CA X.509");
    let leaf_der = parse_pem_cert(issued.certificate_pem());
    let (_, leaf) = X509Certificate::from_der(&leaf_der).expect("leaf X.509");
    assert_eq!(leaf.issuer().as_raw(), ca.subject().as_raw());
    let second = client
        .create_database_user_cert(&p1.id, MANAGED_USER, None)
        .await
        .expect("create cert with the default lifetime");
    let (serial2, _) = check_issued(&second, MANAGED_USER, &p1.id);

    let page = client
        .list_database_user_certs(&p1.id, MANAGED_USER, ListOptions::page(1, 1))
        .await
        .expect("list certs");
    assert_eq!(page.total_count, 2);
    assert_eq!(page.results.len(), 1);
    let certs = client
        .list_all_database_user_certs(&p1.id, MANAGED_USER)
        .await
        .expect("list all certs");
    let listed = certs
        .iter()
        .find(|c| c.id == serial)
        .expect("listed by serial");
    assert_eq!(listed.subject, format!("CN={MANAGED_USER}"));
    assert_eq!(listed.group_id, p1.id);
    assert_eq!(listed.not_after.timestamp(), not_after);
    assert!(certs.iter().any(|c| c.id == serial2));

    // Up to the two-month certificate's own notAfter, inclusive: the default (three-month)
    // one expires later on any date, and a second earlier finds nothing.
    let two_months = chrono::DateTime::from_timestamp(not_after, 0).unwrap();
    let soon = client
        .certificates_expiring_before(two_months)
        .await
        .expect("expiring sweep");
    let soon: Vec<_> = soon.iter().filter(|c| c.group_id == p1.id).collect();
    assert_eq!(soon.len(), 1, "only the two-month certificate: {soon:?}");
    let sooner = client
        .certificates_expiring_before(two_months - Duration::seconds(1))
        .await
        .expect("expiring sweep");
    assert!(
        sooner.iter().all(|c| c.group_id != p1.id),
        "nothing before the two-month certificate: {sooner:?}"
    );
    assert_eq!(soon[0].certificate.id, serial);
    assert_eq!(soon[0].username, MANAGED_USER);
    assert_eq!(soon[0].project_name, p1.name);
}

/// User security: customer CAs (and the refusal of managed certificates meanwhile), disabling
/// them, LDAP settings.
async fn user_security(client: &Client, server: &TestServer, tag: &str) {
    let p1 = project_with_managed_user(client, server, tag).await;
    let donor = project(client, server, format!("ca-donor-{tag}")).await;
    let security = client.get_user_security(&p1.id).await.expect("get");
    assert_eq!(security.customer_x509.cas, None);
    let customer_ca = client
        .get_project_ca(&donor.id)
        .await
        .expect("another project's CA, as a customer CA");
    let set = client
        .set_customer_cas(&p1.id, &customer_ca)
        .await
        .expect("set customer CA");
    assert_eq!(set.customer_x509.cas.as_deref(), Some(customer_ca.as_str()));
    let read = client.get_user_security(&p1.id).await.expect("get");
    assert_eq!(
        read.customer_x509.cas.as_deref(),
        Some(customer_ca.as_str())
    );
    let refused = client
        .create_database_user_cert(&p1.id, MANAGED_USER, None)
        .await
        .expect_err("no managed certificates in self-managed mode");
    assert_eq!(code(&refused), "CANNOT_GENERATE_CERT_IF_ADVANCED_X509");
    assert_eq!(refused.class(), ErrorClass::Usage);
    let disabled = client
        .disable_customer_x509(&p1.id)
        .await
        .expect("disable customer X.509");
    assert_eq!(disabled.customer_x509.cas, None);
    assert_eq!(
        client
            .get_user_security(&p1.id)
            .await
            .expect("get")
            .customer_x509
            .cas,
        None
    );
    let ldap = client
        .update_user_security(
            &p1.id,
            &UserSecurityUpdate {
                customer_x509: None,
                ldap: Some(LdapSettings {
                    hostname: Some("ldap.example.com".into()),
                    port: Some(636),
                    bind_password: Some("bind-secret".into()),
                    ..LdapSettings::default()
                }),
            },
        )
        .await
        .expect("update LDAP settings");
    let ldap = ldap.ldap.expect("LDAP settings");
    assert_eq!(ldap.hostname.as_deref(), Some("ldap.example.com"));
    assert_eq!(ldap.port, Some(636));
    assert!(ldap.bind_password.is_none(), "write-only");
}

/// API keys: organization keys, their access lists, project assignment, project keys; the new
/// key works over its own Digest session.
async fn api_keys(client: &Client, server: &TestServer, tag: &str) {
    let org = server.org_id.as_str();
    let p1 = project(client, server, format!("ops-{tag}")).await;
    let key = client
        .create_org_api_key(
            org,
            &NewApiKey {
                desc: format!("reader {tag}"),
                roles: vec!["ORG_MEMBER".into()],
            },
        )
        .await
        .expect("create API key");
    assert!(!key.private_key.expose().starts_with('*'), "shown once");
    let listed = client
        .list_org_api_keys(org, ListOptions::default())
        .await
        .expect("list keys");
    assert!(listed.results.iter().any(|k| k.id == key.id));
    let all_keys = client.list_all_org_api_keys(org).await.expect("all keys");
    assert_eq!(all_keys.len() as u64, listed.total_count);
    let got = client.get_org_api_key(org, &key.id).await.expect("get key");
    assert!(
        got.private_key.expose().starts_with("********"),
        "masked later"
    );
    assert_eq!(got.public_key, key.public_key);
    let renamed = client
        .update_org_api_key(
            org,
            &key.id,
            &ApiKeyUpdate {
                desc: Some(format!("renamed {tag}")),
                roles: None,
            },
        )
        .await
        .expect("update key");
    assert_eq!(renamed.desc, format!("renamed {tag}"));

    let entries = client
        .create_api_key_access_list(
            org,
            &key.id,
            &[
                AccessListRequest::ip("127.0.0.1"),
                AccessListRequest::cidr("10.0.0.0/8"),
            ],
        )
        .await
        .expect("add access list entries");
    assert_eq!(entries.total_count, 2);
    let one = client
        .get_api_key_access_list_entry(org, &key.id, "10.0.0.0/8")
        .await
        .expect("get entry by CIDR (slash in the path)");
    assert_eq!(one.cidr_block, "10.0.0.0/8");
    client
        .delete_api_key_access_list_entry(org, &key.id, "10.0.0.0/8")
        .await
        .expect("delete entry");
    let left = client
        .list_api_key_access_list(org, &key.id, ListOptions::default())
        .await
        .expect("list entries");
    let blocks: Vec<_> = left.results.iter().map(|e| e.cidr_block.as_str()).collect();
    assert_eq!(blocks, ["127.0.0.1/32"]);
    assert_eq!(left.results[0].ip_address.as_deref(), Some("127.0.0.1"));

    client
        .add_group_api_key(&p1.id, &key.id, &["GROUP_READ_ONLY".to_owned()])
        .await
        .expect("assign key to project");
    let assigned = client
        .list_group_api_keys(&p1.id, ListOptions::default())
        .await
        .expect("list project keys");
    let mine = assigned
        .results
        .iter()
        .find(|k| k.id == key.id)
        .expect("assigned");
    assert!(
        mine.roles
            .iter()
            .any(|r| r.role_name == "GROUP_READ_ONLY" && r.group_id.as_deref() == Some(&*p1.id))
    );
    // The new key works, over its own Digest session, from the address on its access list.
    let reader = server.client(key.credentials());
    let visible = reader.list_all_groups().await.expect("the reader lists");
    assert_eq!(ids(&visible), vec![p1.id.clone()]);
    let denied = reader
        .create_group(&NewProject::new(format!("nope-{tag}"), org))
        .await
        .expect_err("a member cannot create projects");
    assert_eq!(denied.class(), ErrorClass::Auth);
    assert_eq!(code(&denied), "NOT_ORG_GROUP_CREATOR");
    let promoted = client
        .update_group_api_key(
            &p1.id,
            &key.id,
            &ApiKeyUpdate {
                desc: None,
                roles: Some(vec!["GROUP_OWNER".into()]),
            },
        )
        .await
        .expect("change project roles");
    assert!(promoted.roles.iter().any(|r| r.role_name == "GROUP_OWNER"));
    client
        .remove_group_api_key(&p1.id, &key.id)
        .await
        .expect("unassign");
    let assigned = client
        .list_group_api_keys(&p1.id, ListOptions::default())
        .await
        .expect("list project keys");
    assert!(assigned.results.iter().all(|k| k.id != key.id));
    let project_key = client
        .create_group_api_key(
            &p1.id,
            &NewApiKey {
                desc: "project key".into(),
                roles: vec!["GROUP_READ_ONLY".into()],
            },
        )
        .await
        .expect("create project key");
    assert!(!project_key.private_key.expose().starts_with('*'));
    for id in [&key.id, &project_key.id] {
        client
            .delete_org_api_key(org, id)
            .await
            .expect("delete key");
    }
    expect_not_found(
        client.get_org_api_key(org, &key.id).await,
        "RESOURCE_NOT_FOUND",
    );
}

/// Service accounts: create, list, list all, get, update, secrets, access list, delete.
async fn service_accounts(client: &Client, server: &TestServer, tag: &str) {
    let org = server.org_id.as_str();
    let account = client
        .create_org_service_account(
            org,
            &NewServiceAccount {
                name: format!("deployer {tag}"),
                description: "deploys".into(),
                roles: vec!["ORG_READ_ONLY".into()],
                secret_expires_after_hours: 48,
            },
        )
        .await
        .expect("create service account");
    assert!(account.credentials().is_some(), "the first secret is shown");
    let accounts = client
        .list_org_service_accounts(org, ListOptions::default())
        .await
        .expect("list accounts");
    assert!(
        accounts
            .results
            .iter()
            .any(|a| a.client_id == account.client_id)
    );
    let all_accounts = client
        .list_all_org_service_accounts(org)
        .await
        .expect("all accounts");
    assert_eq!(all_accounts.len() as u64, accounts.total_count);
    let got = client
        .get_org_service_account(org, &account.client_id)
        .await
        .expect("get account");
    assert!(
        got.secrets.iter().all(|s| s.secret.is_none()),
        "masked later"
    );
    let changed = client
        .update_org_service_account(
            org,
            &account.client_id,
            &ServiceAccountUpdate {
                name: Some(format!("deployer two {tag}")),
                description: Some("deploys more".into()),
                roles: None,
            },
        )
        .await
        .expect("update account");
    assert_eq!(changed.name, format!("deployer two {tag}"));
    let secret = client
        .create_service_account_secret(org, &account.client_id, 8)
        .await
        .expect("new secret");
    assert!(secret.secret.is_some());
    assert_eq!(
        client
            .get_org_service_account(org, &account.client_id)
            .await
            .expect("get")
            .secrets
            .len(),
        2
    );
    client
        .delete_service_account_secret(org, &account.client_id, &secret.id)
        .await
        .expect("delete secret");
    assert_eq!(
        client
            .get_org_service_account(org, &account.client_id)
            .await
            .expect("get")
            .secrets
            .len(),
        1
    );
    let list = client
        .create_service_account_access_list(
            org,
            &account.client_id,
            &[AccessListRequest::cidr("192.0.2.0/24")],
        )
        .await
        .expect("account access list");
    assert_eq!(list.results[0].cidr_block, "192.0.2.0/24");
    assert!(list.results[0].created.is_some());
    client
        .delete_service_account_access_list_entry(org, &account.client_id, "192.0.2.0/24")
        .await
        .expect("delete account entry");
    assert_eq!(
        client
            .list_service_account_access_list(org, &account.client_id, ListOptions::default())
            .await
            .expect("list")
            .total_count,
        0
    );
    client
        .delete_org_service_account(org, &account.client_id)
        .await
        .expect("delete account");
    expect_not_found(
        client
            .get_org_service_account(org, &account.client_id)
            .await,
        "RESOURCE_NOT_FOUND",
    );
}

/// One module per operation group, each with two tests on fresh servers: as the bootstrap API
/// key over Digest, and as a service account with an OAuth token. `$sessions` is how many
/// Digest sessions of other keys the group opens (the API-key group's reader key).
macro_rules! operation_tests {
    ($($group:ident: $sessions:expr),* $(,)?) => {$(
        mod $group {
            use super::*;

            #[tokio::test]
            async fn with_an_api_key_over_digest() {
                let server = TestServer::start().await;
                let client = server.digest_client();
                super::$group(&client, &server, "digest").await;
                // One challenge for the bootstrap key's session, one per other key's; every
                // other request reused a nonce.
                assert_eq!(server.counters.challenges(), 1 + $sessions);
                assert_eq!(server.counters.token_requests(), 0);
            }

            #[tokio::test]
            async fn with_a_service_account_token() {
                let server = TestServer::start().await;
                let (client, _) = server.service_account_client().await;
                let challenges_before = server.counters.challenges();
                super::$group(&client, &server, "oauth").await;
                // The token was fetched once and reused; the only challenges were the other
                // keys'.
                assert_eq!(server.counters.token_requests(), 1);
                assert_eq!(server.counters.challenges() - challenges_before, $sessions);
            }
        }
    )*};
}

operation_tests!(
    projects: 0,
    database_users: 0,
    certificates: 0,
    user_security: 0,
    api_keys: 1,
    service_accounts: 0,
);
