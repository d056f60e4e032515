//! Conformance checks of certificate revocation: the issuing CA each certificate records,
//! revoking one or all, the revoked lists, and deleting a user while revoking.

use super::*;

/// Creates project `n` of `ns` with a CA; returns the project id and the stored CA.
pub(crate) async fn project_with_ca(store: &dyn Store, ns: Ns, n: u64) -> (String, CaRecord) {
    let p = setup_project(store, ns, n).await;
    let stored = store.insert_ca_if_absent(&ca(&p, n as u8)).await.unwrap();
    (p, stored)
}

/// `c` as signed by `ca`.
pub(crate) fn issued_by(ca: &CaRecord, c: CertificateRecord) -> CertificateRecord {
    CertificateRecord { ca_id: ca.id, ..c }
}

/// What a revocation call passes as its audit template.
pub(crate) fn revoked_template(
    ns: Ns,
    project_id: &str,
    username: &str,
    reason: &str,
) -> AuditEvent {
    AuditEvent {
        at_ms: (T0 + 500) * 1000,
        actor: ns.actor(1),
        source_ip: Some("192.0.2.9".to_owned()),
        action: "certificate.revoked".to_owned(),
        project_id: Some(project_id.to_owned()),
        target: Some(username.to_owned()),
        status: Some(200),
        details: format!(r#"{{"reason":"{reason}"}}"#),
    }
}

/// The serials named by audit entries after `base`, checking that each entry is `template`
/// with only `serial` added to its details.
pub(crate) async fn revoked_serials_audited(
    store: &dyn Store,
    base: i64,
    template: &AuditEvent,
) -> Vec<i64> {
    let entries = store
        .list_audit(&AuditFilter::default(), base, 1000)
        .await
        .unwrap();
    let template_details: serde_json::Value = serde_json::from_str(&template.details).unwrap();
    entries
        .into_iter()
        .map(|e| {
            let mut details: serde_json::Value = serde_json::from_str(&e.event.details).unwrap();
            let serial = details["serial"]
                .as_i64()
                .expect("the entry names its serial");
            details.as_object_mut().unwrap().remove("serial");
            assert_eq!(
                details, template_details,
                "details are the template's plus serial"
            );
            assert_eq!(
                AuditEvent {
                    details: template.details.clone(),
                    ..e.event
                },
                *template
            );
            serial
        })
        .collect()
}

/// `list_project_cas` lists every CA row with its id; a certificate keeps the id of the CA
/// that signed it, and `get_certificate` finds it (revoked or not, expired or not) in its own
/// project only.
pub async fn certificate_records_its_issuing_ca(store: &dyn Store) {
    let ns = Ns(49);
    let (p, ca_p) = project_with_ca(store, ns, 0).await;
    let (q, ca_q) = project_with_ca(store, ns, 1).await;
    let bare = setup_project(store, ns, 2).await;
    assert_eq!(
        store.list_project_cas(&p).await.unwrap(),
        vec![ca_p.clone()]
    );
    assert_eq!(
        store.list_project_cas(&q).await.unwrap(),
        vec![ca_q.clone()]
    );
    assert_eq!(store.list_project_cas(&bare).await.unwrap(), vec![]);
    assert_eq!(
        store.list_project_cas(&ns.project(99)).await.unwrap(),
        vec![]
    );
    assert_ne!(ca_p.id, ca_q.id);

    let now = T0 + 2000;
    let live = issued_by(&ca_p, cert(ns.serial(1), &p, "CN=ann", T0, now + 100));
    let expired = issued_by(&ca_p, cert(ns.serial(2), &p, "CN=ann", T0, now - 100));
    let elsewhere = issued_by(&ca_q, cert(ns.serial(3), &q, "CN=ann", T0, now + 100));
    for c in [&live, &expired, &elsewhere] {
        insert_cert(store, c).await.unwrap();
    }
    assert_eq!(
        store.get_certificate(&p, live.serial).await.unwrap(),
        Some(live.clone())
    );
    assert_eq!(
        store.get_certificate(&p, expired.serial).await.unwrap(),
        Some(expired.clone())
    );
    assert_eq!(
        store.get_certificate(&q, elsewhere.serial).await.unwrap(),
        Some(elsewhere.clone())
    );
    // Another project's serial is not found through this project, nor an unknown one.
    assert_eq!(
        store.get_certificate(&p, elsewhere.serial).await.unwrap(),
        None
    );
    assert_eq!(store.get_certificate(&q, live.serial).await.unwrap(), None);
    assert_eq!(
        store.get_certificate(&p, ns.serial(99)).await.unwrap(),
        None
    );
}

/// Revoking one certificate records time and reason with one audit entry; revoking it again
/// changes nothing and audits nothing; a serial of another user, another project or nobody
/// revokes nothing.
pub async fn revoke_one_certificate_is_idempotent(store: &dyn Store) {
    let ns = Ns(50);
    let (p, ca_p) = project_with_ca(store, ns, 0).await;
    let (q, ca_q) = project_with_ca(store, ns, 1).await;
    let now = T0 + 2000;
    let a1 = issued_by(&ca_p, cert(ns.serial(1), &p, "CN=ann", T0, now + 100));
    let a2 = issued_by(&ca_p, cert(ns.serial(2), &p, "CN=ann", T0 + 1, now + 100));
    let a_old = issued_by(&ca_p, cert(ns.serial(3), &p, "CN=ann", T0, now - 100));
    let b1 = issued_by(&ca_p, cert(ns.serial(4), &p, "CN=bob", T0, now + 100));
    let qa = issued_by(&ca_q, cert(ns.serial(5), &q, "CN=ann", T0, now + 100));
    for c in [&a1, &a2, &a_old, &b1, &qa] {
        insert_cert(store, c).await.unwrap();
    }

    let first = Revocation {
        at: now,
        reason: RevocationReason::KeyCompromise,
    };
    let template = revoked_template(ns, &p, "CN=ann", "keyCompromise");
    let (base, _) = audit_tip(store, "").await;
    let got = store
        .revoke_certificates(&p, "CN=ann", RevokeWhich::One(a1.serial), first, &template)
        .await
        .unwrap();
    let a1_revoked = CertificateRecord {
        revocation: Some(first),
        ..a1.clone()
    };
    assert_eq!(got, vec![a1_revoked.clone()]);
    assert_eq!(
        store.get_certificate(&p, a1.serial).await.unwrap(),
        Some(a1_revoked.clone())
    );
    assert_eq!(
        revoked_serials_audited(store, base, &template).await,
        vec![a1.serial]
    );

    // Again, later and with another reason: the first time and reason stay, no new entry.
    let (base, _) = audit_tip(store, "").await;
    let again = Revocation {
        at: now + 50,
        reason: RevocationReason::Superseded,
    };
    let template2 = revoked_template(ns, &p, "CN=ann", "superseded");
    for which in [RevokeWhich::One(a1.serial), RevokeWhich::One(a1.serial)] {
        assert_eq!(
            store
                .revoke_certificates(&p, "CN=ann", which, again, &template2)
                .await
                .unwrap(),
            vec![a1_revoked.clone()]
        );
    }
    assert_eq!(
        revoked_serials_audited(store, base, &template2).await,
        Vec::<i64>::new()
    );

    // Not this user's, not this project's, nobody's: nothing found, nothing revoked.
    for (project, user, serial) in [
        (&p, "CN=ann", b1.serial),
        (&p, "CN=ann", qa.serial),
        (&q, "CN=ann", a2.serial),
        (&p, "CN=bob", a2.serial),
        (&p, "CN=ann", ns.serial(99)),
    ] {
        assert_eq!(
            store
                .revoke_certificates(project, user, RevokeWhich::One(serial), again, &template2)
                .await
                .unwrap(),
            vec![],
            "{project} {user} {serial}"
        );
    }
    assert_eq!(
        revoked_serials_audited(store, base, &template2).await,
        Vec::<i64>::new()
    );
    for (project, c) in [(&p, &a2), (&p, &b1), (&q, &qa)] {
        assert_eq!(
            store
                .get_certificate(project, c.serial)
                .await
                .unwrap()
                .as_ref(),
            Some(c)
        );
    }

    // An expired certificate can be revoked by serial too (it then leaves CRLs at once).
    let got = store
        .revoke_certificates(
            &p,
            "CN=ann",
            RevokeWhich::One(a_old.serial),
            again,
            &template2,
        )
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![CertificateRecord {
            revocation: Some(again),
            ..a_old.clone()
        }]
    );
}

/// Revoking all of a user's unexpired certificates revokes exactly those, keeps the first
/// revocation of any revoked before, audits each one revoked now, and is idempotent.
pub async fn revoke_all_unexpired_of_one_user(store: &dyn Store) {
    let ns = Ns(51);
    let (p, ca_p) = project_with_ca(store, ns, 0).await;
    let now = T0 + 2000;
    // Issued in the order 3, 1, 2 (by notBefore): the result lists them so.
    let c1 = issued_by(&ca_p, cert(ns.serial(1), &p, "CN=cy", T0 + 10, now + 100));
    let c2 = issued_by(&ca_p, cert(ns.serial(2), &p, "CN=cy", T0 + 20, now + 1));
    let c3 = issued_by(&ca_p, cert(ns.serial(3), &p, "CN=cy", T0 + 5, now + 300));
    let expired = issued_by(&ca_p, cert(ns.serial(4), &p, "CN=cy", T0, now));
    let other = issued_by(&ca_p, cert(ns.serial(5), &p, "CN=dee", T0, now + 100));
    for c in [&c1, &c2, &c3, &expired, &other] {
        insert_cert(store, c).await.unwrap();
    }
    let earlier = Revocation {
        at: now - 10,
        reason: RevocationReason::KeyCompromise,
    };
    let template = revoked_template(ns, &p, "CN=cy", "keyCompromise");
    store
        .revoke_certificates(&p, "CN=cy", RevokeWhich::One(c2.serial), earlier, &template)
        .await
        .unwrap();

    let all = Revocation {
        at: now,
        reason: RevocationReason::CessationOfOperation,
    };
    let template = revoked_template(ns, &p, "CN=cy", "cessationOfOperation");
    let (base, _) = audit_tip(store, "").await;
    let expected = vec![
        CertificateRecord {
            revocation: Some(all),
            ..c3.clone()
        },
        CertificateRecord {
            revocation: Some(all),
            ..c1.clone()
        },
        CertificateRecord {
            revocation: Some(earlier),
            ..c2.clone()
        },
    ];
    let which = RevokeWhich::AllUnexpired { now };
    assert_eq!(
        store
            .revoke_certificates(&p, "CN=cy", which, all, &template)
            .await
            .unwrap(),
        expected
    );
    assert_eq!(
        revoked_serials_audited(store, base, &template).await,
        vec![c3.serial, c1.serial],
        "one entry per certificate revoked now, in the result's order"
    );
    // Expired (not_after == now) and another user's: untouched.
    for c in [&expired, &other] {
        assert_eq!(
            store.get_certificate(&p, c.serial).await.unwrap().as_ref(),
            Some(c)
        );
    }
    // Idempotent.
    let (base, _) = audit_tip(store, "").await;
    let later = Revocation {
        at: now + 5,
        reason: RevocationReason::Unspecified,
    };
    assert_eq!(
        store
            .revoke_certificates(&p, "CN=cy", which, later, &template)
            .await
            .unwrap(),
        expected
    );
    assert_eq!(
        revoked_serials_audited(store, base, &template).await,
        Vec::<i64>::new()
    );
    // A user without certificates, and a project that does not exist.
    for (project, user) in [
        (p.as_str(), "CN=nobody"),
        (ns.project(99).as_str(), "CN=cy"),
    ] {
        assert_eq!(
            store
                .revoke_certificates(project, user, which, all, &template)
                .await
                .unwrap(),
            vec![]
        );
    }
}

/// `list_revoked_unexpired` lists one CA's revoked certificates that have not expired, in
/// serial order, with their revocations.
pub async fn list_revoked_unexpired_per_ca(store: &dyn Store) {
    let ns = Ns(52);
    let (p, ca_p) = project_with_ca(store, ns, 0).await;
    let (q, ca_q) = project_with_ca(store, ns, 1).await;
    let now = T0 + 2000;
    let make = |n: i64, ca: &CaRecord, project: &str, not_after: i64| {
        issued_by(ca, cert(ns.serial(n), project, "CN=eve", T0, not_after))
    };
    // Serials inserted out of order; 4 expires at `now`, 5 stays unrevoked.
    let certs = [
        make(3, &ca_p, &p, now + 10),
        make(1, &ca_p, &p, now + 10),
        make(4, &ca_p, &p, now),
        make(5, &ca_p, &p, now + 10),
        make(2, &ca_p, &p, now + 1),
        make(6, &ca_q, &q, now + 10),
    ];
    for c in &certs {
        insert_cert(store, c).await.unwrap();
    }
    let reasons = [
        (1, RevocationReason::Superseded),
        (2, RevocationReason::KeyCompromise),
        (3, RevocationReason::AffiliationChanged),
        (4, RevocationReason::Unspecified),
    ];
    for (n, reason) in reasons {
        let r = Revocation {
            at: now - n,
            reason,
        };
        store
            .revoke_certificates(
                &p,
                "CN=eve",
                RevokeWhich::One(ns.serial(n)),
                r,
                &revoked_template(ns, &p, "CN=eve", reason.as_str()),
            )
            .await
            .unwrap();
    }
    let r6 = Revocation {
        at: now,
        reason: RevocationReason::CessationOfOperation,
    };
    store
        .revoke_certificates(
            &q,
            "CN=eve",
            RevokeWhich::AllUnexpired { now },
            r6,
            &revoked_template(ns, &q, "CN=eve", "cessationOfOperation"),
        )
        .await
        .unwrap();

    let expected: Vec<(i64, Revocation)> = reasons[..3]
        .iter()
        .map(|&(n, reason)| {
            (
                ns.serial(n),
                Revocation {
                    at: now - n,
                    reason,
                },
            )
        })
        .collect();
    assert_eq!(
        store.list_revoked_unexpired(ca_p.id, now).await.unwrap(),
        expected
    );
    // Earlier, the one that expires at `now` is listed too; later, fewer.
    assert_eq!(
        store
            .list_revoked_unexpired(ca_p.id, now - 1)
            .await
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        store
            .list_revoked_unexpired(ca_p.id, now + 1)
            .await
            .unwrap(),
        vec![expected[0], expected[2]]
    );
    assert_eq!(
        store.list_revoked_unexpired(ca_q.id, now).await.unwrap(),
        vec![(ns.serial(6), r6)]
    );
    assert_eq!(store.list_revoked_unexpired(-1, now).await.unwrap(), vec![]);
}

/// The Atlas list (`list_unexpired_certificates`) leaves revoked certificates out, page and
/// count alike; `list_user_certificates` lists every certificate, expired and revoked too.
pub async fn revoked_certificates_leave_the_unexpired_list(store: &dyn Store) {
    let ns = Ns(55);
    let (p, ca_p) = project_with_ca(store, ns, 0).await;
    let now = T0 + 2000;
    let certs: Vec<CertificateRecord> = (1..=5)
        .map(|n| {
            let not_after = if n == 1 { now - 1 } else { now + 100 };
            issued_by(&ca_p, cert(ns.serial(n), &p, "CN=fay", T0 + n, not_after))
        })
        .collect();
    for c in &certs {
        insert_cert(store, c).await.unwrap();
    }
    let r = Revocation {
        at: now,
        reason: RevocationReason::KeyCompromise,
    };
    for n in [3, 1] {
        store
            .revoke_certificates(
                &p,
                "CN=fay",
                RevokeWhich::One(ns.serial(n)),
                r,
                &revoked_template(ns, &p, "CN=fay", "keyCompromise"),
            )
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=fay", now, NO_PAGE)
            .await
            .unwrap(),
        (summaries([&certs[1], &certs[3], &certs[4]]), 3)
    );
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=fay", now, page(1, 1))
            .await
            .unwrap(),
        (summaries([&certs[3]]), 3)
    );
    let revoked = |c: &CertificateRecord| CertificateRecord {
        revocation: Some(r),
        ..c.clone()
    };
    let all = vec![
        revoked(&certs[0]),
        certs[1].clone(),
        revoked(&certs[2]),
        certs[3].clone(),
        certs[4].clone(),
    ];
    assert_eq!(
        store
            .list_user_certificates(&p, "CN=fay", NO_PAGE)
            .await
            .unwrap(),
        (all.clone(), 5)
    );
    assert_eq!(
        store
            .list_user_certificates(&p, "CN=fay", page(2, 2))
            .await
            .unwrap(),
        (all[2..4].to_vec(), 5)
    );
    assert_eq!(
        store
            .list_user_certificates(&p, "CN=nobody", NO_PAGE)
            .await
            .unwrap(),
        (vec![], 0)
    );
}

/// `delete_database_user_revoking` deletes the user and, for a MANAGED user when asked,
/// revokes its unexpired certificates (the earlier revocation of one kept), auditing each one
/// revoked now; a user of another x509 type, a deletion without `revoke`, and a user that does
/// not exist revoke nothing.
pub async fn delete_database_user_revoking_in_one_transaction(store: &dyn Store) {
    let ns = Ns(56);
    let (p, ca_p) = project_with_ca(store, ns, 0).await;
    let now = T0 + 2000;
    let mut certs = Vec::new();
    for (n, name, not_after) in [
        (1, "gil", now + 100),
        (2, "gil", now + 200),
        (3, "gil", now),
        (4, "hal", now + 100),
        (5, "ivy", now + 100),
        (6, "jon", now + 100),
    ] {
        let c = issued_by(&ca_p, cert(ns.serial(n), &p, name, T0 + n, not_after));
        // Each user is a MANAGED one on `$external` while its certificates are issued.
        insert_cert(store, &c).await.unwrap();
        certs.push(c);
    }
    // Then hal is a SCRAM user on `admin` instead, and jon has no user.
    for name in ["hal", "jon"] {
        assert!(
            store
                .delete_database_user(&p, "$external", name)
                .await
                .unwrap()
        );
    }
    let scram = DatabaseUserRecord {
        x509_type: "NONE".to_owned(),
        ..user(&p, "admin", "hal", T0)
    };
    store.create_database_user(&scram).await.unwrap();
    let earlier = Revocation {
        at: now - 10,
        reason: RevocationReason::KeyCompromise,
    };
    let template = revoked_template(ns, &p, "gil", "keyCompromise");
    store
        .revoke_certificates(
            &p,
            "gil",
            RevokeWhich::One(certs[1].serial),
            earlier,
            &template,
        )
        .await
        .unwrap();

    let ceased = Revocation {
        at: now,
        reason: RevocationReason::CessationOfOperation,
    };
    let template = revoked_template(ns, &p, "gil", "cessationOfOperation");
    let (base, _) = audit_tip(store, "").await;
    assert_eq!(
        store
            .delete_database_user_revoking(&p, "$external", "gil", Some((ceased, &template)))
            .await
            .unwrap(),
        (
            true,
            vec![
                CertificateRecord {
                    revocation: Some(ceased),
                    ..certs[0].clone()
                },
                CertificateRecord {
                    revocation: Some(earlier),
                    ..certs[1].clone()
                },
            ]
        )
    );
    assert_eq!(
        revoked_serials_audited(store, base, &template).await,
        vec![certs[0].serial]
    );
    assert!(
        store
            .get_database_user(&p, "$external", "gil")
            .await
            .unwrap()
            .is_none()
    );
    // Expired at `now`: left as it was.
    assert_eq!(
        store
            .get_certificate(&p, certs[2].serial)
            .await
            .unwrap()
            .as_ref(),
        Some(&certs[2])
    );

    // Not MANAGED, not asked, not there: deleted (or not), nothing revoked.
    let template = revoked_template(ns, &p, "hal", "cessationOfOperation");
    assert_eq!(
        store
            .delete_database_user_revoking(&p, "admin", "hal", Some((ceased, &template)))
            .await
            .unwrap(),
        (true, vec![])
    );
    assert_eq!(
        store
            .delete_database_user_revoking(&p, "$external", "ivy", None)
            .await
            .unwrap(),
        (true, vec![])
    );
    assert_eq!(
        store
            .delete_database_user_revoking(&p, "$external", "jon", Some((ceased, &template)))
            .await
            .unwrap(),
        (false, vec![])
    );
    assert_eq!(
        store
            .delete_database_user_revoking(&p, "$external", "gil", Some((ceased, &template)))
            .await
            .unwrap(),
        (false, vec![])
    );
    for c in &certs[3..] {
        assert_eq!(
            store.get_certificate(&p, c.serial).await.unwrap().as_ref(),
            Some(c)
        );
    }
    assert!(
        store
            .get_database_user(&p, "admin", "hal")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_database_user(&p, "$external", "ivy")
            .await
            .unwrap()
            .is_none()
    );
}
