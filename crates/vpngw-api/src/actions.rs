//! The one list of API actions.
//!
//! Each line declares an action: its name, its access class, the handler function that serves
//! it (in `vpngw-service`'s `handlers` module), and its required parameters. `vpngw-service`
//! expands the same list into its dispatch `match`, so an action without a handler does not
//! compile. The dispatcher checks the required parameters before the handler runs, so every
//! missing one is answered alike (`MissingParameter`).

/// Read actions never change state; a read-only AccessKey may call only those.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

#[derive(Debug, Clone, Copy)]
pub struct ActionSpec {
    pub name: &'static str,
    pub access: Access,
    /// The handler's function name in `vpngw-service::handlers`.
    pub handler: &'static str,
    pub required: &'static [&'static str],
}

/// Calls `$m! { (Name, Access, handler_fn, [Required, ...]), ... }` with the whole list.
#[macro_export]
macro_rules! for_each_action {
    ($m:ident) => {
        $m! {
            // ---- regions and zones ----
            (DescribeRegions, Read, describe_regions, []),
            (DescribeZones, Read, describe_zones, [RegionId]),
            (DescribeVpnGatewayAvailableZones, Read, describe_vpn_gateway_available_zones, [RegionId]),
            // ---- VPC and vSwitch (what a stack creates and reads before its VPN) ----
            (CreateVpc, Write, create_vpc, [RegionId]),
            (DescribeVpcs, Read, describe_vpcs, [RegionId]),
            (DescribeVpcAttribute, Read, describe_vpc_attribute, [RegionId, VpcId]),
            (ModifyVpcAttribute, Write, modify_vpc_attribute, [RegionId, VpcId]),
            (DeleteVpc, Write, delete_vpc, [RegionId, VpcId]),
            (CreateVSwitch, Write, create_vswitch, [RegionId, VpcId, ZoneId, CidrBlock]),
            (DescribeVSwitches, Read, describe_vswitches, [RegionId]),
            (DescribeVSwitchAttributes, Read, describe_vswitch_attributes, [RegionId, VSwitchId]),
            (ModifyVSwitchAttribute, Write, modify_vswitch_attribute, [RegionId, VSwitchId]),
            (DeleteVSwitch, Write, delete_vswitch, [RegionId, VSwitchId]),
            (DescribeRouteTableList, Read, describe_route_table_list, [RegionId]),
            // ---- VPN gateway (2022 reference 4.1-4.4) ----
            (CreateVpnGateway, Write, create_vpn_gateway, [RegionId, VpcId, Bandwidth]),
            (ModifyVpnGatewayAttribute, Write, modify_vpn_gateway_attribute, [RegionId, VpnGatewayId]),
            (DescribeVpnGateways, Read, describe_vpn_gateways, [RegionId]),
            (DescribeVpnGateway, Read, describe_vpn_gateway, [RegionId, VpnGatewayId]),
            (DeleteVpnGateway, Write, delete_vpn_gateway, [RegionId, VpnGatewayId]),
            // ---- enhanced VPN gateways (current SDK) ----
            (CreateEnhancedVpnGateway, Write, create_enhanced_vpn_gateway, [RegionId, VpcId]),
            (UpdateEnhancedVpnGateway, Write, update_enhanced_vpn_gateway, [RegionId, VpnGatewayId]),
            (DeleteEnhancedVpnGateway, Write, delete_enhanced_vpn_gateway, [RegionId, VpnGatewayId]),
            // ---- one-click diagnosis (current SDK) ----
            (DiagnoseVpnGateway, Write, diagnose_vpn_gateway, [RegionId, VpnGatewayId, ResourceType, ResourceId]),
            (GetVpnGatewayDiagnoseResult, Read, get_vpn_gateway_diagnose_result, [RegionId, DiagnoseId]),
            // ---- IPsec-VPN connections (7.1-7.6; ModifyTunnelAttribute, DiagnoseVpnConnections and DescribeVpnConnectionLogs from the current SDK) ----
            (CreateVpnConnection, Write, create_vpn_connection, [RegionId, VpnGatewayId, LocalSubnet, RemoteSubnet]),
            (ModifyVpnConnectionAttribute, Write, modify_vpn_connection_attribute, [RegionId, VpnConnectionId]),
            (DescribeVpnConnections, Read, describe_vpn_connections, [RegionId]),
            (DescribeVpnConnection, Read, describe_vpn_connection, [RegionId, VpnConnectionId]),
            (DownloadVpnConnectionConfig, Read, download_vpn_connection_config, [RegionId, VpnConnectionId]),
            (DeleteVpnConnection, Write, delete_vpn_connection, [RegionId, VpnConnectionId]),
            (ModifyTunnelAttribute, Write, modify_tunnel_attribute, [RegionId, VpnConnectionId, TunnelId]),
            (DiagnoseVpnConnections, Read, diagnose_vpn_connections, [RegionId]),
            (DescribeVpnConnectionLogs, Read, describe_vpn_connection_logs, [RegionId, VpnConnectionId]),
            // ---- VPN attachments and their routes (current SDK) ----
            (CreateVpnAttachment, Write, create_vpn_attachment, [RegionId, LocalSubnet, RemoteSubnet]),
            (ModifyVpnAttachmentAttribute, Write, modify_vpn_attachment_attribute, [RegionId, VpnConnectionId]),
            (DeleteVpnAttachment, Write, delete_vpn_attachment, [RegionId, VpnConnectionId]),
            (DescribeVpnAttachments, Read, describe_vpn_attachments, [RegionId]),
            (CreateVcoRouteEntry, Write, create_vco_route_entry, [RegionId, VpnConnectionId, RouteDest, NextHop, Weight]),
            (DeleteVcoRouteEntry, Write, delete_vco_route_entry, [RegionId, VpnConnectionId, RouteDest, NextHop, Weight]),
            (ModifyVcoRouteEntryWeight, Write, modify_vco_route_entry_weight, [RegionId, VpnConnectionId, RouteDest, NextHop, Weight, NewWeight]),
            (DescribeVcoRouteEntries, Read, describe_vco_route_entries, [RegionId, VpnConnectionId]),
            (DescribeVpnCrossAccountAuthorizations, Read, describe_vpn_cross_account_authorizations, [RegionId]),
            (CheckVpnBgpEnabled, Read, check_vpn_bgp_enabled, [RegionId]),
            // ---- VPN routes (6.1-6.9, and the current SDK's policy-route modifications) ----
            (CreateVpnRouteEntry, Write, create_vpn_route_entry, [RegionId, VpnGatewayId, RouteDest, NextHop, Weight, PublishVpc]),
            (CreateVpnPbrRouteEntry, Write, create_vpn_pbr_route_entry, [RegionId, VpnGatewayId, RouteSource, RouteDest, NextHop, Weight, PublishVpc]),
            (PublishVpnRouteEntry, Write, publish_vpn_route_entry, [RegionId, VpnGatewayId, RouteDest, NextHop, PublishVpc, RouteType]),
            (DescribeVpnRouteEntries, Read, describe_vpn_route_entries, [RegionId, VpnGatewayId]),
            (DescribeVpnPbrRouteEntries, Read, describe_vpn_pbr_route_entries, [RegionId, VpnGatewayId]),
            (ModifyVpnRouteEntryWeight, Write, modify_vpn_route_entry_weight, [RegionId, VpnGatewayId, RouteDest, NextHop, Weight, NewWeight]),
            (ModifyVpnPbrRouteEntryWeight, Write, modify_vpn_pbr_route_entry_weight, [RegionId, VpnGatewayId, RouteSource, RouteDest, NextHop, Weight, NewWeight]),
            (ModifyVpnPbrRouteEntryPriority, Write, modify_vpn_pbr_route_entry_priority, [RegionId, VpnGatewayId, RouteSource, RouteDest, NextHop, Weight, Priority, NewPriority]),
            (ModifyVpnPbrRouteEntryAttribute, Write, modify_vpn_pbr_route_entry_attribute, [RegionId, VpnGatewayId, RouteSource, RouteDest, NextHop, Weight, Priority]),
            (DeleteVpnRouteEntry, Write, delete_vpn_route_entry, [RegionId, VpnGatewayId, RouteDest, NextHop, Weight]),
            (DeleteVpnPbrRouteEntry, Write, delete_vpn_pbr_route_entry, [RegionId, VpnGatewayId, RouteSource, RouteDest, NextHop, Weight]),
            // ---- IPsec servers (9.1-9.4; ListIpsecServerLogs from the current SDK) ----
            (CreateIpsecServer, Write, create_ipsec_server, [RegionId, VpnGatewayId, LocalSubnet, ClientIpPool]),
            (ListIpsecServers, Read, list_ipsec_servers, [RegionId]),
            (UpdateIpsecServer, Write, update_ipsec_server, [RegionId, IpsecServerId]),
            (DeleteIpsecServer, Write, delete_ipsec_server, [RegionId, IpsecServerId]),
            (ListIpsecServerLogs, Read, list_ipsec_server_logs, [RegionId, IpsecServerId]),
            // ---- SSL-VPN (2022 reference section 8; DescribeSslVpnClientCert and DescribeSslVpnClients from the current SDK) ----
            (CreateSslVpnServer, Write, create_ssl_vpn_server, [RegionId, VpnGatewayId, ClientIpPool, LocalSubnet]),
            (ModifySslVpnServer, Write, modify_ssl_vpn_server, [RegionId, SslVpnServerId]),
            (DescribeSslVpnServers, Read, describe_ssl_vpn_servers, [RegionId]),
            (DeleteSslVpnServer, Write, delete_ssl_vpn_server, [RegionId, SslVpnServerId]),
            (CreateSslVpnClientCert, Write, create_ssl_vpn_client_cert, [RegionId, SslVpnServerId]),
            (ModifySslVpnClientCert, Write, modify_ssl_vpn_client_cert, [RegionId, SslVpnClientCertId]),
            (DescribeSslVpnClientCerts, Read, describe_ssl_vpn_client_certs, [RegionId]),
            (DescribeSslVpnClientCert, Read, describe_ssl_vpn_client_cert, [RegionId, SslVpnClientCertId]),
            (DeleteSslVpnClientCert, Write, delete_ssl_vpn_client_cert, [RegionId, SslVpnClientCertId]),
            (DescribeVpnSslServerLogs, Read, describe_vpn_ssl_server_logs, [RegionId, VpnSslServerId]),
            (DescribeSslVpnClients, Read, describe_ssl_vpn_clients, [RegionId, VpnGatewayId]),
            // ---- gateway certificates (4.8-4.10) ----
            (AssociateVpnGatewayWithCertificate, Write, associate_vpn_gateway_with_certificate, [RegionId, VpnGatewayId, CertificateId, CertificateType]),
            (DissociateVpnGatewayWithCertificate, Write, dissociate_vpn_gateway_with_certificate, [RegionId, VpnGatewayId, CertificateId, CertificateType]),
            (ListVpnCertificateAssociations, Read, list_vpn_certificate_associations, [RegionId]),
            // ---- tags (4.5-4.7) ----
            (TagResources, Write, tag_resources, [RegionId, ResourceType]),
            (ListTagResources, Read, list_tag_resources, [RegionId, ResourceType]),
            (UnTagResources, Write, untag_resources, [RegionId, ResourceType]),
            // ---- resource groups (current SDK) ----
            (MoveVpnResourceGroup, Write, move_vpn_resource_group, [RegionId, InstanceId, NewResourceGroupId, ResourceType]),
            // ---- customer gateway (5.1-5.5) ----
            (CreateCustomerGateway, Write, create_customer_gateway, [RegionId, IpAddress]),
            (ModifyCustomerGatewayAttribute, Write, modify_customer_gateway_attribute, [RegionId, CustomerGatewayId]),
            (DescribeCustomerGateways, Read, describe_customer_gateways, [RegionId]),
            (DescribeCustomerGateway, Read, describe_customer_gateway, [RegionId, CustomerGatewayId]),
            (DeleteCustomerGateway, Write, delete_customer_gateway, [RegionId, CustomerGatewayId]),
        }
    };
}

macro_rules! make_specs {
    ($( ($name:ident, $access:ident, $handler:ident, [$($req:ident),*]) ),* $(,)?) => {
        /// Every action, in declaration order.
        pub const ACTIONS: &[ActionSpec] = &[
            $( ActionSpec {
                name: stringify!($name),
                access: Access::$access,
                handler: stringify!($handler),
                required: &[$(stringify!($req)),*],
            }, )*
        ];
    };
}

for_each_action!(make_specs);

/// Looks an action up by its exact name.
pub fn find(name: &str) -> Option<&'static ActionSpec> {
    ACTIONS.iter().find(|a| a.name == name)
}

/// The action list as Markdown, for `docs/actions.md`.
pub fn actions_markdown() -> String {
    let mut s = String::from(
        "# Actions\n\nGenerated from `crates/vpngw-api/src/actions.rs`; do not edit by hand \
         (`cargo run -p vpngw -- docs actions > docs/actions.md`).\n\n\
         | Action | Access | Required parameters |\n|---|---|---|\n",
    );
    for a in ACTIONS {
        s.push_str(&format!("| {} | {:?} | {} |\n", a.name, a.access, a.required.join(", ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found() {
        for a in ACTIONS {
            assert_eq!(find(a.name).map(|x| x.name), Some(a.name));
            assert_eq!(ACTIONS.iter().filter(|b| b.name == a.name).count(), 1);
        }
        assert!(find("describeregions").is_none(), "action names are case-sensitive");
    }

    #[test]
    fn access_class_follows_the_verb() {
        for a in ACTIONS {
            // DiagnoseVpnConnections records nothing; DiagnoseVpnGateway records a diagnosis.
            let read = ["Describe", "List", "Download", "Get", "Check"].iter().any(|p| a.name.starts_with(p)) || a.name == "DiagnoseVpnConnections";
            assert_eq!(a.access == Access::Read, read, "{}", a.name);
        }
    }
}
