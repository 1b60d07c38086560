//! The SSL-VPN PKI: each SSL-VPN server has its own certificate authority, a server
//! certificate, client certificates it signs, and a revocation list (rcgen, ECDSA P-256).
//!
//! Everything here is pure: PEM in, PEM out. Handlers issue certificates (intent: a client
//! certificate is a resource); the data plane renders the CRL from the revoked serials.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams,
    SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// A certificate and its private key, both PEM (the key never printed by `Debug`).
#[derive(Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    /// Upper-case hex, as OpenSSL prints it.
    pub serial: String,
    pub not_after_ms: i64,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").field("cert_pem", &self.cert_pem).field("key_pem", &"<redacted>").field("serial", &self.serial).field("not_after_ms", &self.not_after_ms).finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("PKI: {0}")]
pub struct PkiError(String);

fn err(e: impl std::fmt::Display) -> PkiError {
    PkiError(e.to_string())
}

fn now() -> OffsetDateTime {
    // Whole seconds: certificates carry no fractions, and reads compare with what we stored.
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// A random positive 16-byte serial.
fn serial() -> (SerialNumber, String) {
    let mut b: [u8; 16] = rand::random();
    b[0] &= 0x7f;
    b[0] |= 0x10;
    (SerialNumber::from_slice(&b), hex::encode_upper(b))
}

/// A new certificate authority for one SSL-VPN server.
pub fn new_ca(common_name: &str, validity: std::time::Duration) -> Result<Issued, PkiError> {
    let key = KeyPair::generate().map_err(err)?;
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::OrganizationName, "vpngw");
    p.distinguished_name.push(DnType::CommonName, common_name);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let start = now() - Duration::minutes(5);
    p.not_before = start;
    p.not_after = start + Duration::try_from(validity).map_err(err)?;
    let (sn, serial) = serial();
    p.serial_number = Some(sn);
    let not_after_ms = ms(p.not_after);
    let cert = p.self_signed(&key).map_err(err)?;
    Ok(Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem(), serial, not_after_ms })
}

/// Re-creates the issuer from its stored PEM (same name and key; what signing needs).
fn issuer(ca_cert_pem: &str, ca_key_pem: &str) -> Result<(rcgen::Certificate, KeyPair), PkiError> {
    let key = KeyPair::from_pem(ca_key_pem).map_err(err)?;
    let mut params = CertificateParams::from_ca_cert_pem(ca_cert_pem).map_err(err)?;
    // Keep the key identifier the CA's own certificate carries, so that the authority key
    // identifier of everything signed matches it.
    if let Some(ski) = subject_key_id(ca_cert_pem) {
        params.key_identifier_method = KeyIdMethod::PreSpecified(ski);
    }
    let cert = params.self_signed(&key).map_err(err)?;
    Ok((cert, key))
}

fn subject_key_id(pem_str: &str) -> Option<Vec<u8>> {
    let der = pem::parse(pem_str).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.contents()).ok()?;
    cert.extensions().iter().find_map(|e| match e.parsed_extension() {
        x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
        _ => None,
    })
}

/// Whether the certificate is for a server (TLS server auth) or a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

/// A certificate for `common_name`, signed by the CA.
pub fn issue(ca_cert_pem: &str, ca_key_pem: &str, common_name: &str, role: Role, validity: std::time::Duration) -> Result<Issued, PkiError> {
    issue_for(ca_cert_pem, ca_key_pem, common_name, &[], role, validity)
}

/// Like [`issue`], with subject alternative names: each an IP address or a DNS name (what a
/// TLS client checks the server's certificate against).
pub fn issue_for(ca_cert_pem: &str, ca_key_pem: &str, common_name: &str, alt_names: &[String], role: Role, validity: std::time::Duration) -> Result<Issued, PkiError> {
    let (ca, ca_key) = issuer(ca_cert_pem, ca_key_pem)?;
    let key = KeyPair::generate().map_err(err)?;
    let mut p = CertificateParams::new(alt_names.to_vec()).map_err(err)?;
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::OrganizationName, "vpngw");
    p.distinguished_name.push(DnType::CommonName, common_name);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyAgreement];
    p.extended_key_usages = vec![match role {
        Role::Server => ExtendedKeyUsagePurpose::ServerAuth,
        Role::Client => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    p.use_authority_key_identifier_extension = true;
    let start = now() - Duration::minutes(5);
    p.not_before = start;
    p.not_after = now() + Duration::try_from(validity).map_err(err)?;
    let (sn, serial) = serial();
    p.serial_number = Some(sn);
    let not_after_ms = ms(p.not_after);
    let cert = p.signed_by(&key, &ca, &ca_key).map_err(err)?;
    Ok(Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem(), serial, not_after_ms })
}

pub use crate::ssl_vpn::Revoked;

/// The CA's revocation list (number `number`) naming `revoked`, valid for `validity`.
pub fn crl(ca_cert_pem: &str, ca_key_pem: &str, revoked: &[Revoked], number: u64, validity: std::time::Duration) -> Result<String, PkiError> {
    let (ca, ca_key) = issuer(ca_cert_pem, ca_key_pem)?;
    let this_update = now() - Duration::minutes(5);
    let revoked_certs = revoked
        .iter()
        .map(|r| {
            let bytes = hex::decode(&r.serial).map_err(err)?;
            let at = OffsetDateTime::from_unix_timestamp(r.revoked_ms / 1000).map_err(err)?;
            Ok(RevokedCertParams { serial_number: SerialNumber::from_slice(&bytes), revocation_time: at, reason_code: Some(RevocationReason::CessationOfOperation), invalidity_date: None })
        })
        .collect::<Result<Vec<_>, PkiError>>()?;
    let params = CertificateRevocationListParams {
        this_update,
        next_update: this_update + Duration::try_from(validity).map_err(err)?,
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: ca.params().key_identifier_method.clone(),
    };
    params.signed_by(&ca, &ca_key).map_err(err)?.pem().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::*;

    const YEAR: std::time::Duration = std::time::Duration::from_secs(365 * 86400);

    fn parse(pem_str: &str) -> (Vec<u8>, String) {
        let p = ::pem::parse(pem_str).unwrap();
        (p.contents().to_vec(), p.tag().to_string())
    }

    #[test]
    fn client_certificates_chain_to_their_ca_and_carry_their_expiry() {
        let ca = new_ca("vss-test", 10 * YEAR).unwrap();
        let client = issue(&ca.cert_pem, &ca.key_pem, "vsc-abc", Role::Client, YEAR).unwrap();
        let (ca_der, _) = parse(&ca.cert_pem);
        let (cl_der, _) = parse(&client.cert_pem);
        let (_, ca_x) = parse_x509_certificate(&ca_der).unwrap();
        let (_, cl_x) = parse_x509_certificate(&cl_der).unwrap();
        assert!(ca_x.is_ca());
        assert_eq!(cl_x.issuer(), ca_x.subject());
        cl_x.verify_signature(Some(ca_x.public_key())).expect("signed by the CA");
        assert_eq!(cl_x.subject().iter_common_name().next().unwrap().as_str().unwrap(), "vsc-abc");
        assert_eq!(cl_x.raw_serial_as_string().replace(':', "").to_uppercase(), client.serial);
        assert_eq!(cl_x.validity().not_after.timestamp() * 1000, client.not_after_ms);
        // The authority key identifier names the CA's subject key identifier.
        let aki = cl_x.extensions().iter().find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().map(|k| k.0.to_vec()),
            _ => None,
        });
        assert_eq!(aki, subject_key_id(&ca.cert_pem));
        // The private key is the certificate's.
        let key = KeyPair::from_pem(&client.key_pem).unwrap();
        assert_eq!(key.public_key_raw(), cl_x.public_key().subject_public_key.data.as_ref());
    }

    #[test]
    fn the_crl_names_revoked_serials_and_is_signed_by_the_ca() {
        let ca = new_ca("vss-test", 10 * YEAR).unwrap();
        let a = issue(&ca.cert_pem, &ca.key_pem, "vsc-a", Role::Client, YEAR).unwrap();
        let crl_pem = crl(&ca.cert_pem, &ca.key_pem, &[Revoked { serial: a.serial.clone(), revoked_ms: 1_700_000_000_000 }], 7, YEAR).unwrap();
        let (der, tag) = parse(&crl_pem);
        assert_eq!(tag, "X509 CRL");
        let (_, crl_x) = parse_x509_crl(&der).unwrap();
        let serials: Vec<String> = crl_x.iter_revoked_certificates().map(|r| hex::encode_upper(r.raw_serial())).collect();
        assert_eq!(serials, vec![a.serial]);
        let (ca_der, _) = parse(&ca.cert_pem);
        let (_, ca_x) = parse_x509_certificate(&ca_der).unwrap();
        assert_eq!(crl_x.issuer(), ca_x.subject());
        crl_x.verify_signature(ca_x.public_key()).expect("signed by the CA");
    }
}
