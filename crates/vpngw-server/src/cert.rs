//! `vpngw cert import`: reads a certificate and its private key (PEM), checks them, and stores
//! them for an account. The certificate must parse as X.509, be inside its validity window, and
//! the key must be the certificate's: RSA by modulus, EC (P-256, SM2, ...) by the public point
//! the private key carries (SEC1 inside PKCS#8, as OpenSSL writes it).

use anyhow::{bail, Context, Result};
use vpngw_service::handlers::Certificate;

/// The public key a private key implies, as the certificate's SubjectPublicKeyInfo spells it
/// (the RSA modulus without leading zeros, or the EC point).
fn key_public(pem_text: &str) -> Result<(String, Vec<u8>)> {
    let block = pem::parse(pem_text.as_bytes()).context("the key is not PEM")?;
    let der = block.contents();
    match block.tag() {
        "PRIVATE KEY" => {
            let info = pkcs8::PrivateKeyInfo::try_from(der).map_err(|e| anyhow::anyhow!("the key is not PKCS#8: {e}"))?;
            let oid = info.algorithm.oid.to_string();
            match oid.as_str() {
                "1.2.840.113549.1.1.1" => rsa_modulus(info.private_key),
                "1.2.840.10045.2.1" | "1.2.156.10197.1.301" => ec_point(info.private_key, info.public_key),
                other => bail!("unsupported key algorithm {other}"),
            }
        }
        "RSA PRIVATE KEY" => rsa_modulus(der),
        "EC PRIVATE KEY" => ec_point(der, None),
        other => bail!("unsupported PEM block {other}"),
    }
}

fn rsa_modulus(der: &[u8]) -> Result<(String, Vec<u8>)> {
    let k = pkcs1::RsaPrivateKey::try_from(der).map_err(|e| anyhow::anyhow!("bad RSA key: {e}"))?;
    Ok(("RSA".into(), strip(k.modulus.as_bytes())))
}

fn ec_point(der: &[u8], outer_public: Option<&[u8]>) -> Result<(String, Vec<u8>)> {
    let k = sec1::EcPrivateKey::try_from(der).map_err(|e| anyhow::anyhow!("bad EC key: {e}"))?;
    let public = k.public_key.or(outer_public).context("the EC key does not carry its public key; export it with OpenSSL (it always does)")?;
    Ok(("EC".into(), public.to_vec()))
}

fn strip(b: &[u8]) -> Vec<u8> {
    let first = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    b[first..].to_vec()
}

/// Parses and checks a certificate and key; `kind` is Signature or Encryption.
pub fn check(cert_pem: &str, key_pem: &str, kind: &str) -> Result<Certificate> {
    if kind != "Signature" && kind != "Encryption" {
        bail!("--type must be Signature or Encryption");
    }
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).map_err(|e| anyhow::anyhow!("the certificate is not PEM: {e}"))?;
    let cert = pem.parse_x509().map_err(|e| anyhow::anyhow!("the certificate is not X.509: {e}"))?;
    let validity = cert.validity();
    if !validity.is_valid() {
        bail!("the certificate is not valid now (valid from {} to {})", validity.not_before, validity.not_after);
    }
    let spki = cert.public_key();
    let (alg, from_key) = key_public(key_pem)?;
    let from_cert = match spki.parsed().map_err(|e| anyhow::anyhow!("the certificate's public key does not parse: {e}"))? {
        x509_parser::public_key::PublicKey::RSA(rsa) => strip(rsa.modulus),
        x509_parser::public_key::PublicKey::EC(point) => point.data().to_vec(),
        _ => bail!("unsupported certificate key algorithm {}", spki.algorithm.algorithm),
    };
    if from_cert != from_key {
        bail!("the key does not match the certificate");
    }
    let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|o| o.to_id_string()).unwrap_or_default();
    let key_algorithm = match (alg.as_str(), curve.as_str()) {
        ("EC", "1.2.156.10197.1.301") => "SM2".to_string(),
        ("EC", "1.2.840.10045.3.1.7") => "ECDSA-P256".to_string(),
        ("EC", other) => format!("EC {other}"),
        (a, _) => a.to_string(),
    };
    let name = cert.subject().iter_common_name().next().and_then(|c| c.as_str().ok()).unwrap_or_default().to_string();
    let out = Certificate {
        name,
        certificate_type: kind.to_string(),
        subject: cert.subject().to_string(),
        key_algorithm,
        not_before_ms: validity.not_before.timestamp() * 1000,
        not_after_ms: validity.not_after.timestamp() * 1000,
        cert_pem: cert_pem.to_string(),
        key_pem: key_pem.into(),
    };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::check;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{}/tests/fixtures/certs/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn rsa_ec_and_sm2_certificates_with_their_keys_import() {
        for (name, alg) in [("rsa", "RSA"), ("ec", "ECDSA-P256"), ("sm2", "SM2")] {
            let c = check(&fixture(&format!("{name}.crt")), &fixture(&format!("{name}.key")), "Encryption").unwrap();
            assert_eq!((c.key_algorithm.as_str(), c.certificate_type.as_str()), (alg, "Encryption"), "{name}");
            assert_eq!(c.name, format!("vpngw-test-{name}"));
            assert!(c.not_after_ms > c.not_before_ms);
        }
    }

    #[test]
    fn a_wrong_key_an_expired_certificate_and_a_bad_type_are_refused() {
        let err = |r: anyhow::Result<_>| r.map(|_: super::Certificate| ()).unwrap_err().to_string();
        assert!(err(check(&fixture("rsa.crt"), &fixture("ec.key"), "Signature")).contains("does not match"));
        assert!(err(check(&fixture("ec.crt"), &fixture("sm2.key"), "Signature")).contains("does not match"));
        assert!(err(check(&fixture("expired.crt"), &fixture("expired.key"), "Signature")).contains("not valid now"));
        assert!(err(check(&fixture("rsa.crt"), &fixture("rsa.key"), "Both")).contains("Signature or Encryption"));
        assert!(err(check("not a certificate", &fixture("rsa.key"), "Signature")).contains("not PEM"));
    }
}
