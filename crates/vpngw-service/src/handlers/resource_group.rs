//! MoveVpnResourceGroup (current SDK): moves a VPN gateway (with everything under it), a
//! customer gateway or a VPN attachment into another resource group.
//!
//! ResourceType is matched case-insensitively, as Terraform's alicloud provider spells it
//! `VpnGateWay`. Resource groups are labels here (there is no Resource Manager to ask), so any
//! NewResourceGroupId is taken. Only metadata changes: no lifecycle step, no data-plane change.

use serde_json::{json, Value};
use vpngw_api::{ApiError, Code};
use vpngw_store::{Kind, Mutation, Record};

use super::{children, load, obj};
use crate::{HandlerResult, Req};

fn moved(mut rec: Record, group: &str) -> Mutation {
    if let Value::Object(doc) = &mut rec.doc {
        doc.insert("resource_group_id".into(), json!(group));
    }
    Mutation::Put(rec)
}

pub async fn move_vpn_resource_group(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let id = p.req("InstanceId")?;
    let group = p.req("NewResourceGroupId")?;
    let mut records = Vec::new();
    match p.req("ResourceType")?.to_ascii_lowercase().as_str() {
        // A gateway takes its IPsec server, SSL-VPN server (with its client certificates) and
        // IPsec-VPN connections along, as the SDK documents.
        "vpngateway" => {
            let gw = load(req, Kind::VpnGateway, id, Code::InvalidVpnGatewayId).await?;
            for kind in [Kind::VpnConnection, Kind::IpsecServer] {
                records.extend(children(req, kind, &gw.id).await?);
            }
            for server in children(req, Kind::SslVpnServer, &gw.id).await? {
                records.extend(children(req, Kind::SslVpnClientCert, &server.id).await?);
                records.push(server);
            }
            records.push(gw);
        }
        "customergateway" => records.push(load(req, Kind::CustomerGateway, id, Code::InvalidCustomerGatewayId).await?),
        // An attachment is a connection bound to no VPN gateway.
        "vpnattachment" => {
            let rec = load(req, Kind::VpnConnection, id, Code::InvalidVpnConnectionId).await?;
            if rec.parent.is_some() {
                return Err(ApiError::new(Code::NotAnAttachment));
            }
            records.push(rec);
        }
        _ => return Err(ApiError::new(Code::InvalidResourceType)),
    }
    let mutations = records.into_iter().map(|r| moved(r, group)).collect();
    req.commit(mutations, obj(json!({}))).await
}
