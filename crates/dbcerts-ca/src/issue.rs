//! Per-project certificate authorities and the Atlas leaf profile.
//!
//! Leaf profile (what Atlas issues, checked against recorded Atlas certificates):
//! X.509 v3; subject `CN=<username>` and nothing else; issuer
//! `CN=<groupId>, OU=<unit>, O=<organization>`; a random positive 63-bit serial; `notBefore` one
//! hour in the past and `notAfter` N calendar months ahead; critical Key Usage
//! `digitalSignature`; critical Extended Key Usage `clientAuth`; no other extensions. Only
//! when the operator configures an OCSP responder URL does a leaf also carry Authority
//! Information Access with that URL ([`ManagedCa::issue_with_ocsp_url`]).
//!
//! CA generations: a project's first CA (generation 1) has Atlas's exact subject. A CA made by
//! rotation (generation 2 and on) adds one RDN, `generationQualifier=<n>` (X.520, OID 2.5.4.44),
//! after Atlas's three, so that no two generations of a project share a name. Leaves carry no
//! authority key identifier (Atlas's profile), so a verifier finds a leaf's issuer in a trust
//! bundle by name alone: two CAs of one name in one bundle make OpenSSL pick one of them and
//! refuse the other's leaves (`tests/generations.rs` shows it with `openssl verify` and TLS).

use chrono::{DateTime, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use zeroize::Zeroizing;

use crate::{CaError, KeyAlgorithm, LeafKey, dn};

/// Extended Key Usage with the single purpose id-kp-clientAuth (1.3.6.1.5.5.7.3.2), DER-encoded:
/// `SEQUENCE { OBJECT IDENTIFIER 1.3.6.1.5.5.7.3.2 }`. rcgen marks EKU non-critical, and Atlas
/// marks it critical, so the extension is written as a custom one.
const EKU_CLIENT_AUTH_DER: [u8; 12] = [
    0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02,
];
const OID_EXT_KEY_USAGE: [u64; 4] = [2, 5, 29, 37];
/// X.520 `generationQualifier`: what tells a rotated CA's name from its predecessors'.
const OID_GENERATION_QUALIFIER: [u64; 4] = [2, 5, 4, 44];
const OID_AUTHORITY_INFO_ACCESS: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 1, 1];

/// How long a managed CA certificate is valid, in years.
const CA_VALIDITY_YEARS: u32 = 10;

/// The names that go into a managed CA's subject besides the project id.
#[derive(Debug, Clone)]
pub struct ManagedCaParams {
    pub organization: String,
    pub organizational_unit: String,
}

impl Default for ManagedCaParams {
    /// Atlas's own values, as seen in the issuer of Atlas-managed certificates.
    fn default() -> Self {
        ManagedCaParams {
            organization: "MongoDB Inc".to_owned(),
            organizational_unit: "Atlas".to_owned(),
        }
    }
}

/// One project's managed CA: its certificate and signing key.
pub struct ManagedCa {
    cert_der: Vec<u8>,
    pub(crate) issuer: Issuer<'static, KeyPair>,
    pub(crate) algorithm: KeyAlgorithm,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    generation: u32,
}

impl std::fmt::Debug for ManagedCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedCa")
            .field("algorithm", &self.algorithm)
            .field("generation", &self.generation)
            .field("key", &"[secret key elided]")
            .finish()
    }
}

/// What a leaf certificate is issued for.
#[derive(Debug, Clone)]
pub struct LeafRequest<'a> {
    pub username: &'a str,
    pub serial: i64,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

/// A signed leaf certificate.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    pub der: Vec<u8>,
    pub subject: String,
}

impl ManagedCa {
    /// Creates a new self-signed CA for project `group_id`, with a key of `algorithm`: the
    /// project's first generation, named exactly as Atlas names it.
    pub fn create(
        group_id: &str,
        names: &ManagedCaParams,
        algorithm: KeyAlgorithm,
        now: DateTime<Utc>,
    ) -> Result<ManagedCa, CaError> {
        Self::create_generation(group_id, names, algorithm, now, 1)
    }

    /// Creates generation `generation` (1 or more) of project `group_id`'s CA. Generation 1 has
    /// Atlas's name; later ones add `generationQualifier=<generation>` (module documentation).
    pub fn create_generation(
        group_id: &str,
        names: &ManagedCaParams,
        algorithm: KeyAlgorithm,
        now: DateTime<Utc>,
        generation: u32,
    ) -> Result<ManagedCa, CaError> {
        if generation == 0 {
            return Err(CaError::CorruptCa("CA generations start at 1".into()));
        }
        let key = algorithm.generate_pair()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = ca_name(group_id, names, generation);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(serial_number(crate::random_serial()));
        let not_before = now - chrono::Duration::hours(1);
        // Calendar months, so that Feb 29 maps to Feb 28 ten years on instead of failing.
        let not_after = crate::add_months(now, CA_VALIDITY_YEARS * 12)?;
        params.not_before = to_offset(not_before)?;
        params.not_after = to_offset(not_after)?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| CaError::Signing(e.to_string()))?;
        let cert_der = cert.der().to_vec();
        Ok(ManagedCa {
            issuer: Issuer::new(params, key),
            cert_der,
            algorithm,
            not_before,
            not_after,
            generation,
        })
    }

    /// Rebuilds a CA from its stored certificate and (unsealed) PKCS#8 key.
    pub fn from_parts(cert_der: &[u8], key_pkcs8_der: &[u8]) -> Result<ManagedCa, CaError> {
        let (_, parsed) = x509_parser::parse_x509_certificate(cert_der)
            .map_err(|e| CaError::CorruptCa(e.to_string()))?;
        let not_after = DateTime::from_timestamp(parsed.validity().not_after.timestamp(), 0)
            .ok_or_else(|| CaError::CorruptCa("notAfter out of range".into()))?;
        let not_before = DateTime::from_timestamp(parsed.validity().not_before.timestamp(), 0)
            .ok_or_else(|| CaError::CorruptCa("notBefore out of range".into()))?;
        let spki_alg = parsed.public_key().algorithm.algorithm.to_id_string();
        let algorithm = match (spki_alg.as_str(), parsed.public_key().raw.len()) {
            ("1.2.840.113549.1.1.1", n) if n > 400 => KeyAlgorithm::Rsa4096,
            ("1.2.840.113549.1.1.1", _) => KeyAlgorithm::Rsa2048,
            ("1.2.840.10045.2.1", n) if n > 100 => KeyAlgorithm::EcdsaP384,
            ("1.2.840.10045.2.1", _) => KeyAlgorithm::EcdsaP256,
            (other, _) => return Err(CaError::CorruptCa(format!("unknown key type {other}"))),
        };
        let generation = generation_of(parsed.subject())?;
        let key = KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(key_pkcs8_der),
            algorithm.signature_algorithm(),
        )
        .map_err(|e| CaError::CorruptCa(e.to_string()))?;
        // A key that is not the certificate's (a sealed key moved onto another generation's
        // row) would sign leaves nobody can verify: refuse it here instead.
        if rcgen::PublicKeyData::subject_public_key_info(&key) != parsed.public_key().raw {
            return Err(CaError::CorruptCa(
                "the key does not belong to the CA certificate".into(),
            ));
        }
        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(cert_der), key)
            .map_err(|e| CaError::CorruptCa(e.to_string()))?;
        Ok(ManagedCa {
            cert_der: cert_der.to_vec(),
            issuer,
            algorithm,
            not_before,
            not_after,
            generation,
        })
    }

    /// The CA's generation: 1 for a project's first CA (Atlas's name), then 2, 3, ... for each
    /// rotation.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Whether a leaf ending at `not_after` fits in this CA's validity with `margin` to spare.
    /// Issuance asks this with the rotation margin, to rotate ahead of time.
    pub fn covers(&self, not_after: DateTime<Utc>, margin: chrono::Duration) -> bool {
        not_after + margin <= self.not_after
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    pub fn not_before(&self) -> DateTime<Utc> {
        self.not_before
    }

    pub fn not_after(&self) -> DateTime<Utc> {
        self.not_after
    }

    pub fn cert_pem(&self) -> String {
        pem_block("CERTIFICATE", &self.cert_der)
    }

    /// The CA's private key as PKCS#8 DER, for sealing before it is stored.
    pub fn key_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.issuer.key().serialize_der())
    }

    /// Signs a leaf certificate with the Atlas profile for `key`'s public half. A leaf that
    /// would outlive the CA is refused: it would stop verifying when the CA expires.
    pub fn issue(
        &self,
        req: &LeafRequest<'_>,
        key: &LeafKey,
    ) -> Result<IssuedCertificate, CaError> {
        self.issue_with_ocsp_url(req, key, None)
    }

    /// [`issue`](Self::issue), plus, when `ocsp_url` is given (the operator configured an OCSP
    /// responder), a non-critical Authority Information Access extension with that one
    /// id-ad-ocsp URL. Without it the leaf is exactly Atlas's profile.
    pub fn issue_with_ocsp_url(
        &self,
        req: &LeafRequest<'_>,
        key: &LeafKey,
        ocsp_url: Option<&str>,
    ) -> Result<IssuedCertificate, CaError> {
        if req.not_after > self.not_after {
            return Err(CaError::OutlivesCa);
        }
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, req.username);
        params.distinguished_name = name;
        params.serial_number = Some(serial_number(req.serial));
        params.not_before = to_offset(req.not_before)?;
        params.not_after = to_offset(req.not_after)?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let mut eku =
            CustomExtension::from_oid_content(&OID_EXT_KEY_USAGE, EKU_CLIENT_AUTH_DER.to_vec());
        eku.set_criticality(true);
        params.custom_extensions = vec![eku];
        if let Some(url) = ocsp_url {
            params.custom_extensions.push(aia_ocsp(url)?);
        }
        let cert = params
            .signed_by(&key.pair, &self.issuer)
            .map_err(|e| CaError::Signing(e.to_string()))?;
        Ok(IssuedCertificate {
            der: cert.der().to_vec(),
            subject: dn::managed_subject(req.username),
        })
    }
}

/// What a trust bundle and a generation listing show of a managed CA certificate, read from its
/// DER without its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaCertInfo {
    /// The subject in the RFC 4514 order x509-parser prints (`CN=..., OU=..., O=...`).
    pub subject: String,
    pub generation: u32,
}

impl CaCertInfo {
    pub fn read(cert_der: &[u8]) -> Result<CaCertInfo, CaError> {
        let (_, parsed) = x509_parser::parse_x509_certificate(cert_der)
            .map_err(|e| CaError::CorruptCa(e.to_string()))?;
        Ok(CaCertInfo {
            subject: parsed.subject().to_string(),
            generation: generation_of(parsed.subject())?,
        })
    }
}

/// A certificate as one PEM block, LF line endings.
pub fn certificate_pem(cert_der: &[u8]) -> String {
    pem_block("CERTIFICATE", cert_der)
}

/// The body Atlas returns from certificate creation: the certificate PEM, then the unencrypted
/// PKCS#8 private key PEM, LF line endings, no chain.
pub fn response_pem(cert_der: &[u8], key: &LeafKey) -> Zeroizing<String> {
    let mut out = Zeroizing::new(pem_block("CERTIFICATE", cert_der));
    let key_pem = Zeroizing::new(key.pair.serialize_pem());
    out.push_str(&key_pem);
    out
}

/// Authority Information Access with one id-ad-ocsp entry (RFC 5280 §4.2.2.1; non-critical).
fn aia_ocsp(url: &str) -> Result<CustomExtension, CaError> {
    use x509_cert::der::Encode;
    use x509_cert::der::asn1::Ia5String;
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::{AccessDescription, AuthorityInfoAccessSyntax};
    let location = Ia5String::new(url)
        .map_err(|e| CaError::Signing(format!("OCSP URL {url:?} is not IA5: {e}")))?;
    let aia = AuthorityInfoAccessSyntax(vec![AccessDescription {
        access_method: crate::ocsp::OID_AD_OCSP,
        access_location: GeneralName::UniformResourceIdentifier(location),
    }]);
    let der = aia
        .to_der()
        .map_err(|e| CaError::Signing(format!("encoding the AIA extension: {e}")))?;
    Ok(CustomExtension::from_oid_content(
        &OID_AUTHORITY_INFO_ACCESS,
        der,
    ))
}

fn pem_block(tag: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(tag, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

fn ca_name(group_id: &str, names: &ManagedCaParams, generation: u32) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, group_id);
    name.push(
        DnType::OrganizationalUnitName,
        names.organizational_unit.as_str(),
    );
    name.push(DnType::OrganizationName, names.organization.as_str());
    if generation > 1 {
        name.push(
            DnType::CustomDnType(OID_GENERATION_QUALIFIER.to_vec()),
            generation.to_string(),
        );
    }
    name
}

/// The generation a CA's subject names: its `generationQualifier`, or 1 without one.
fn generation_of(subject: &x509_parser::x509::X509Name<'_>) -> Result<u32, CaError> {
    let oid = x509_parser::der_parser::oid::Oid::from(&OID_GENERATION_QUALIFIER)
        .map_err(|_| CaError::CorruptCa("generationQualifier OID".into()))?;
    match subject.iter_by_oid(&oid).next() {
        None => Ok(1),
        Some(attr) => attr
            .as_str()
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .filter(|g| *g > 1)
            .ok_or_else(|| CaError::CorruptCa("unreadable CA generation".into())),
    }
}

fn serial_number(serial: i64) -> SerialNumber {
    let bytes = serial.to_be_bytes();
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(7);
    SerialNumber::from_slice(&bytes[first..])
}

fn to_offset(t: DateTime<Utc>) -> Result<time::OffsetDateTime, CaError> {
    time::OffsetDateTime::from_unix_timestamp(t.timestamp()).map_err(|_| CaError::Validity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::extensions::ParsedExtension;
    use x509_parser::prelude::*;

    fn issue_one(
        alg: KeyAlgorithm,
        username: &str,
    ) -> (ManagedCa, IssuedCertificate, LeafKey, i64) {
        let now = Utc::now();
        let ca = ManagedCa::create(
            "5efda6aea3f2ed2e7dd6ce05",
            &ManagedCaParams::default(),
            alg,
            now,
        )
        .unwrap();
        let key = alg.generate().unwrap();
        let (nb, na) = crate::leaf_validity(now, 3).unwrap();
        let serial = crate::random_serial();
        let req = LeafRequest {
            username,
            serial,
            not_before: nb,
            not_after: na,
        };
        let cert = ca.issue(&req, &key).unwrap();
        (ca, cert, key, serial)
    }

    /// Checks an ECDSA signature of `cert` with `ca`'s public key, through aws-lc.
    fn assert_signed_by(cert: &X509Certificate<'_>, ca: &X509Certificate<'_>) {
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1, UnparsedPublicKey,
        };
        let alg = match cert.signature_algorithm.algorithm.to_id_string().as_str() {
            "1.2.840.10045.4.3.2" => &ECDSA_P256_SHA256_ASN1,
            "1.2.840.10045.4.3.3" => &ECDSA_P384_SHA384_ASN1,
            other => panic!("test helper handles ECDSA only, got {other}"),
        };
        let key = UnparsedPublicKey::new(alg, ca.public_key().subject_public_key.data.as_ref());
        key.verify(
            cert.tbs_certificate.as_ref(),
            cert.signature_value.data.as_ref(),
        )
        .expect("signature verifies under the CA key");
        assert_eq!(cert.issuer(), ca.subject());
    }

    #[test]
    fn leaf_has_the_atlas_profile() {
        let before = Utc::now().timestamp();
        let (ca, cert, _key, serial) = issue_one(KeyAlgorithm::EcdsaP256, "user389");
        let after = Utc::now().timestamp();
        let (_, x) = parse_x509_certificate(&cert.der).unwrap();
        assert_eq!(x.version(), X509Version::V3);
        assert_eq!(x.subject().to_string(), "CN=user389");
        assert_eq!(
            x.issuer().to_string(),
            "CN=5efda6aea3f2ed2e7dd6ce05, OU=Atlas, O=MongoDB Inc"
        );
        assert_eq!(x.serial.to_string(), serial.to_string());
        let exts = x.extensions();
        assert_eq!(exts.len(), 2, "exactly KU and EKU");
        for ext in exts {
            assert!(ext.critical);
            match ext.parsed_extension() {
                ParsedExtension::KeyUsage(ku) => {
                    assert!(ku.digital_signature());
                    assert_eq!(ku.flags, 1, "digitalSignature only");
                }
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    assert!(eku.client_auth);
                    assert!(!eku.server_auth && eku.other.is_empty());
                }
                other => panic!("unexpected extension {other:?}"),
            }
        }
        // Created within the call, backdated one hour; three calendar months from creation.
        let created = x.validity().not_before.timestamp() + 3600;
        assert!(
            (before..=after).contains(&created),
            "{before} <= {created} <= {after}"
        );
        let created = DateTime::from_timestamp(created, 0).unwrap();
        assert_eq!(
            x.validity().not_after.timestamp(),
            crate::add_months(created, 3).unwrap().timestamp()
        );
        let (_, cax) = parse_x509_certificate(ca.cert_der()).unwrap();
        assert!(cax.is_ca());
        assert_signed_by(&x, &cax);
    }

    #[test]
    fn aia_ocsp_url_appears_only_when_configured() {
        let (ca, plain, _key, _) = issue_one(KeyAlgorithm::EcdsaP256, "carol");
        let (_, x) = parse_x509_certificate(&plain.der).unwrap();
        assert!(
            x.extensions().iter().all(|e| !matches!(
                e.parsed_extension(),
                ParsedExtension::AuthorityInfoAccess(_)
            )),
            "no AIA without a configured responder URL"
        );
        let key = KeyAlgorithm::EcdsaP256.generate().unwrap();
        let (nb, na) = crate::leaf_validity(Utc::now(), 1).unwrap();
        let req = LeafRequest {
            username: "carol",
            serial: 42,
            not_before: nb,
            not_after: na,
        };
        let url = "https://ocsp.example.test/api/dbcerts/v1/ocsp/5efda6aea3f2ed2e7dd6ce05";
        let cert = ca.issue_with_ocsp_url(&req, &key, Some(url)).unwrap();
        let (_, x) = parse_x509_certificate(&cert.der).unwrap();
        let exts = x.extensions();
        assert_eq!(exts.len(), 3, "KU, EKU and AIA");
        let aia = exts
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityInfoAccess(aia) => Some((e.critical, aia)),
                _ => None,
            })
            .expect("an AIA extension");
        assert!(!aia.0, "AIA is non-critical (RFC 5280)");
        let entries: Vec<_> = aia.1.accessdescs.iter().collect();
        assert_eq!(entries.len(), 1);
        assert_eq!(
            entries[0].access_method.to_id_string(),
            "1.3.6.1.5.5.7.48.1"
        );
        assert_eq!(entries[0].access_location, GeneralName::URI(url));
        let (_, cax) = parse_x509_certificate(ca.cert_der()).unwrap();
        assert_signed_by(&x, &cax);
    }

    #[test]
    fn rsa_leaf_is_4096_with_sha256_rsa() {
        let (_ca, cert, key, _) = issue_one(KeyAlgorithm::Rsa4096, "alice");
        let (_, x) = parse_x509_certificate(&cert.der).unwrap();
        assert_eq!(
            x.signature_algorithm.algorithm.to_id_string(),
            "1.2.840.113549.1.1.11"
        );
        match x.public_key().parsed().unwrap() {
            x509_parser::public_key::PublicKey::RSA(rsa) => {
                assert_eq!(rsa.key_size(), 4096);
                assert_eq!(rsa.exponent, &[1, 0, 1]);
            }
            other => panic!("not RSA: {other:?}"),
        }
        let pem = response_pem(&cert.der, &key);
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(pem.contains("-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\n"));
        assert!(pem.ends_with("-----END PRIVATE KEY-----\n"));
        assert!(!pem.contains('\r'));
    }

    #[test]
    fn ca_round_trips_through_parts() {
        let (ca, _, _, _) = issue_one(KeyAlgorithm::EcdsaP384, "bob");
        let again = ManagedCa::from_parts(ca.cert_der(), &ca.key_pkcs8_der()).unwrap();
        assert_eq!(again.algorithm(), KeyAlgorithm::EcdsaP384);
        let key = KeyAlgorithm::EcdsaP256.generate().unwrap();
        let now = Utc::now();
        let (nb, na) = crate::leaf_validity(now, 1).unwrap();
        let cert = again
            .issue(
                &LeafRequest {
                    username: "bob",
                    serial: 7,
                    not_before: nb,
                    not_after: na,
                },
                &key,
            )
            .unwrap();
        let (_, x) = parse_x509_certificate(&cert.der).unwrap();
        let (_, cax) = parse_x509_certificate(ca.cert_der()).unwrap();
        assert_eq!(x.issuer(), cax.subject());
        assert_signed_by(&x, &cax);
    }

    #[test]
    fn subject_is_one_rdn_even_for_hostile_names() {
        // The HTTP layer refuses these names; the PKI layer must still never split them.
        let (_ca, cert, _, _) = issue_one(KeyAlgorithm::EcdsaP256, "alice,OU=admin+CN=root");
        let (_, x) = parse_x509_certificate(&cert.der).unwrap();
        let rdns: Vec<_> = x.subject().iter().collect();
        assert_eq!(rdns.len(), 1);
        assert_eq!(rdns[0].iter().count(), 1);
        assert_eq!(cert.subject, "CN=alice\\,OU=admin\\+CN=root");
    }

    #[test]
    fn a_ca_made_on_feb_29_lasts_ten_years_and_no_leaf_outlives_it() {
        use chrono::TimeZone;
        let leap = Utc.with_ymd_and_hms(2028, 2, 29, 12, 0, 0).unwrap();
        let ca = ManagedCa::create(
            "aaaaaaaaaaaaaaaaaaaaaaaa",
            &ManagedCaParams::default(),
            KeyAlgorithm::EcdsaP256,
            leap,
        )
        .unwrap();
        assert_eq!(
            ca.not_after(),
            Utc.with_ymd_and_hms(2038, 2, 28, 12, 0, 0).unwrap()
        );
        let key = KeyAlgorithm::EcdsaP256.generate().unwrap();
        let late = Utc.with_ymd_and_hms(2037, 1, 1, 0, 0, 0).unwrap();
        let (nb, na) = crate::leaf_validity(late, 24).unwrap();
        let req = LeafRequest {
            username: "u",
            serial: 9,
            not_before: nb,
            not_after: na,
        };
        assert!(matches!(ca.issue(&req, &key), Err(CaError::OutlivesCa)));
    }

    #[test]
    fn later_generations_add_a_generation_qualifier_and_round_trip() {
        let now = Utc::now();
        let names = ManagedCaParams::default();
        let group = "5efda6aea3f2ed2e7dd6ce05";
        let g1 = ManagedCa::create(group, &names, KeyAlgorithm::EcdsaP256, now).unwrap();
        let g3 =
            ManagedCa::create_generation(group, &names, KeyAlgorithm::EcdsaP256, now, 3).unwrap();
        let (_, x1) = parse_x509_certificate(g1.cert_der()).unwrap();
        let (_, x3) = parse_x509_certificate(g3.cert_der()).unwrap();
        assert_eq!(
            x1.subject().to_string(),
            "CN=5efda6aea3f2ed2e7dd6ce05, OU=Atlas, O=MongoDB Inc"
        );
        assert_eq!(
            x3.subject().to_string(),
            "CN=5efda6aea3f2ed2e7dd6ce05, OU=Atlas, O=MongoDB Inc, generationQualifier=3"
        );
        assert_eq!(g1.generation(), 1);
        assert_eq!(g3.generation(), 3);
        let again = ManagedCa::from_parts(g3.cert_der(), &g3.key_pkcs8_der()).unwrap();
        assert_eq!(again.generation(), 3);
        let again = ManagedCa::from_parts(g1.cert_der(), &g1.key_pkcs8_der()).unwrap();
        assert_eq!(again.generation(), 1);
        let info = CaCertInfo::read(g3.cert_der()).unwrap();
        assert_eq!(info.generation, 3);
        assert!(info.subject.ends_with(", generationQualifier=3"));
        assert_eq!(CaCertInfo::read(g1.cert_der()).unwrap().generation, 1);
        assert_eq!(certificate_pem(g3.cert_der()), g3.cert_pem());
        assert!(
            ManagedCa::create_generation(group, &names, KeyAlgorithm::EcdsaP256, now, 0).is_err()
        );
    }

    #[test]
    fn a_key_from_another_ca_is_refused() {
        let now = Utc::now();
        let names = ManagedCaParams::default();
        let a = ManagedCa::create(
            "aaaaaaaaaaaaaaaaaaaaaaaa",
            &names,
            KeyAlgorithm::EcdsaP256,
            now,
        )
        .unwrap();
        let b = ManagedCa::create(
            "aaaaaaaaaaaaaaaaaaaaaaaa",
            &names,
            KeyAlgorithm::EcdsaP256,
            now,
        )
        .unwrap();
        assert!(matches!(
            ManagedCa::from_parts(a.cert_der(), &b.key_pkcs8_der()),
            Err(CaError::CorruptCa(_))
        ));
    }

    #[test]
    fn covers_keeps_the_margin() {
        let now = Utc::now();
        let ca = ManagedCa::create(
            "aaaaaaaaaaaaaaaaaaaaaaaa",
            &ManagedCaParams::default(),
            KeyAlgorithm::EcdsaP256,
            now,
        )
        .unwrap();
        let day = chrono::Duration::days(1);
        assert!(ca.covers(ca.not_after() - day, day));
        assert!(!ca.covers(ca.not_after() - day, day * 2));
        assert!(!ca.covers(ca.not_after() + day, chrono::Duration::zero()));
    }

    #[test]
    fn serials_encode_as_positive_integers() {
        for s in [1i64, 127, 128, 255, 256, i64::MAX] {
            let bytes = serial_number(s).to_bytes();
            assert_eq!(
                bytes.iter().fold(0i128, |a, b| (a << 8) | *b as i128),
                s as i128
            );
        }
    }
}
