//! Gateway certificates (2022 reference 4.8-4.10). Alibaba takes certificates from its
//! certificate service; vpngw keeps them in a local store that the operator fills with
//! `vpngw cert import` (which parses them and checks that the key matches). Only
//! NationalStandard gateways take associated certificates, one of each type (Signature,
//! Encryption).

use serde_json::{json, Value};
use vpngw_api::{ApiError, Code, Params};
pub use vpngw_model::certificate::Certificate;
use vpngw_store::{Kind, ListQuery, Mutation, Record, Store, StoreError};

use super::vpn_gateway::{ensure_writable, gateway_busy, CertAssociation, VpnGateway};
use super::{doc, iso_time, load, obj, to_doc};
use crate::{ids, store_error, HandlerResult, Req};

/// Stores an imported certificate for an account and returns its CertificateId; its private
/// key is sealed first ([`crate::secrets`]).
pub async fn import_certificate(store: &dyn Store, sealer: &crate::secrets::Sealer, account: i64, mut cert: Certificate) -> Result<String, StoreError> {
    let id = ids::new_id("cert");
    cert.key_pem = sealer.seal(&crate::secrets::key_context(&id, "key_pem"), &cert.key_pem).into();
    let rec = Record {
        kind: Kind::Certificate,
        id: id.clone(),
        account,
        region: String::new(),
        parent: None,
        status: super::Lifecycle::Active.as_str().into(),
        created_ms: crate::now_ms(),
        doc: to_doc(&cert),
    };
    store.commit(vec![Mutation::Put(rec)]).await?;
    Ok(id)
}

fn cert_type(p: &Params) -> Result<String, ApiError> {
    match p.req("CertificateType")? {
        "Signature" => Ok("Signature".into()),
        "Encryption" => Ok("Encryption".into()),
        _ => Err(ApiError::invalid("CertificateType")),
    }
}

/// A certificate of the caller's account.
async fn certificate(req: &Req<'_>, id: &str) -> Result<Certificate, ApiError> {
    match req.store().get_any(Kind::Certificate, id).await.map_err(store_error)? {
        Some(r) if r.account == req.scope.account => doc(&r),
        _ => Err(ApiError::new(Code::InvalidCertificateId)),
    }
}

async fn change(req: &mut Req<'_>, associate: bool) -> HandlerResult {
    let p = req.params.clone();
    let mut rec = load(req, Kind::VpnGateway, p.req("VpnGatewayId")?, Code::InvalidVpnGatewayId).await?;
    let mut gw: VpnGateway = doc(&rec)?;
    ensure_writable(&rec, &gw)?;
    let kind = cert_type(&p)?;
    let id = p.req("CertificateId")?.to_string();
    // DryRun: sections 4.8 and 4.9 answer a request that passes the checks with its RequestId
    // (not DryRunOperation), and change nothing.
    let dry_run = p.opt_bool("DryRun")?.unwrap_or(false);
    let cert = certificate(req, &id).await?;
    if associate {
        if gw.vpn_type != "NationalStandard" {
            return Err(ApiError::new(Code::CertificateNotNationalStandard));
        }
        if cert.certificate_type != kind {
            return Err(ApiError::msg(Code::InvalidParameter, format!("The certificate {id} was imported as a {} certificate.", cert.certificate_type)));
        }
        match gw.certificates.iter().find(|a| a.certificate_type == kind) {
            Some(a) if a.certificate_id == id => return req.commit(Vec::new(), Default::default()).await,
            Some(_) => return Err(ApiError::new(Code::CertificateTypeAssociated)),
            None => {}
        }
        if dry_run {
            return req.commit(Vec::new(), Default::default()).await;
        }
        gw.certificates.push(CertAssociation { certificate_id: id, certificate_type: kind, associated_ms: crate::now_ms() });
    } else {
        let before = gw.certificates.len();
        gw.certificates.retain(|a| !(a.certificate_id == id && a.certificate_type == kind));
        if gw.certificates.len() == before {
            return Err(ApiError::new(Code::CertificateAssociationNotFound));
        }
        if dry_run {
            return req.commit(Vec::new(), Default::default()).await;
        }
    }
    rec.doc = to_doc(&gw);
    let muts = gateway_busy(req, rec);
    req.commit(muts, Default::default()).await
}

pub async fn associate_vpn_gateway_with_certificate(req: &mut Req<'_>) -> HandlerResult {
    change(req, true).await
}

pub async fn dissociate_vpn_gateway_with_certificate(req: &mut Req<'_>) -> HandlerResult {
    change(req, false).await
}

pub async fn list_vpn_certificate_associations(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let (offset, max) = crate::validate::token_paging(&p)?;
    let kind = match p.opt("CertificateType") {
        None => None,
        Some(_) => Some(cert_type(&p)?),
    };
    let (gateways, certs) = (p.list("VpnGatewayId")?, p.list("CertificateId")?);
    let q = ListQuery { ids: gateways, limit: u32::MAX as u64, ..Default::default() };
    let mut page = req.store().list(Kind::VpnGateway, &req.scope, &q).await.map_err(store_error)?.items;
    page.reverse(); // oldest gateway first, for a stable order across pages
    let mut rows: Vec<Value> = Vec::new();
    for rec in &page {
        let gw: VpnGateway = doc(rec)?;
        for a in &gw.certificates {
            if kind.as_deref().is_some_and(|k| k != a.certificate_type) || (!certs.is_empty() && !certs.contains(&a.certificate_id)) {
                continue;
            }
            rows.push(json!({
                "VpnGatewayId": rec.id, "CertificateId": a.certificate_id, "CertificateType": a.certificate_type,
                "AssociationTime": iso_time(a.associated_ms), "RegionId": req.scope.region,
            }));
        }
    }
    let total = rows.len() as u64;
    let items: Vec<Value> = rows.into_iter().skip(offset as usize).take(max as usize).collect();
    let next_token = crate::validate::next_token(offset, items.len(), total);
    Ok(obj(json!({"VpnCertificateRelations": items, "TotalCount": total, "MaxResults": max, "NextToken": next_token})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_imported_before_sealing_are_sealed_at_start_and_only_once() {
        let store = std::sync::Arc::new(vpngw_store::sqlite::SqliteStore::memory().unwrap());
        let svc = crate::Service::new(store.clone(), crate::ServiceConfig::default());
        let cert = Certificate { key_pem: "-----BEGIN PRIVATE KEY-----".into(), ..Default::default() };
        // As an earlier version stored it: in the clear.
        let rec = Record { kind: Kind::Certificate, id: "cert-old".into(), account: 1, region: String::new(), parent: None, status: "active".into(), created_ms: 0, doc: to_doc(&cert) };
        store.commit(vec![Mutation::Put(rec)]).await.unwrap();
        let new_id = import_certificate(store.as_ref(), &svc.config.sealer, 1, cert.clone()).await.unwrap();
        // The start-up sweep (the store's opening) seals it, and only it.
        let sealer = &svc.config.sealer;
        assert_eq!(crate::sealed::reseal(store.as_ref(), sealer, sealer, true).await.unwrap().secrets, 1, "only the old one");
        assert_eq!(crate::sealed::reseal(store.as_ref(), sealer, sealer, true).await.unwrap().secrets, 0);
        for id in ["cert-old", new_id.as_str()] {
            let c: Certificate = serde_json::from_value(store.get_any(Kind::Certificate, id).await.unwrap().unwrap().doc).unwrap();
            assert_eq!(svc.config.sealer.open(&crate::secrets::key_context(id, "key_pem"), &c.key_pem).unwrap(), "-----BEGIN PRIVATE KEY-----", "{id}");
        }
    }
}
