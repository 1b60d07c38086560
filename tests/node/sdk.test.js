// The official Node.js SDK (@alicloud/vpc20160428 7.3.2, the version WIRE.md was recorded with)
// against a real `vpngw serve`: ACS3 signing with chunked form bodies, lower-case booleans,
// `%20` and a bare `*` in the query, and RPC v1 ('v2' mode). Run by scripts/test.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const Vpc = require('@alicloud/vpc20160428');
const { freePort, healthy } = require('./helpers');
const $OpenApi = require('@alicloud/openapi-client');

const Client = Vpc.default;
const REGION = 'cn-hangzhou';
const BIN = process.env.VPNGW_BIN || path.join(__dirname, '..', '..', 'target', 'debug', 'vpngw');
const KEYS = { alice: ['AKNODEALICE000000001', 'alice-secret'], bob: ['AKNODEBOB00000000001', 'bob-secret'] };
const CONFIG = `transition_ms = 150
metrics_listen = "127.0.0.1:0"
[[accounts]]
name = "alice"
access_key_id = "${KEYS.alice[0]}"
access_key_secret = "${KEYS.alice[1]}"

[[accounts]]
name = "bob"
access_key_id = "${KEYS.bob[0]}"
access_key_secret = "${KEYS.bob[1]}"
`;

let server;
let endpoint;
// The SDK's default protocol: the server makes its own CA at first start, the clients trust it.
let caPem;

before(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vpngw-node-'));
  fs.writeFileSync(path.join(dir, 'vpngw.toml'), CONFIG);
  endpoint = `127.0.0.1:${await freePort()}`;
  const log = fs.openSync(path.join(dir, 'serve.log'), 'a');
  server = spawn(BIN, ['serve', '--config', path.join(dir, 'vpngw.toml'), '--data-dir', path.join(dir, 'data'), '--listen', endpoint, '--tls', 'self-signed'], { stdio: ['ignore', log, log] });
  for (let i = 0; i < 300 && !(await healthy(endpoint)); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(await healthy(endpoint), 'vpngw became healthy');
  caPem = fs.readFileSync(path.join(dir, 'data', 'tls', 'ca.pem'), 'utf8');
});

after(() => server && server.kill('SIGTERM'));

function client(who = 'alice', signatureAlgorithm) {
  const [accessKeyId, accessKeySecret] = KEYS[who];
  const cfg = new $OpenApi.Config({ accessKeyId, accessKeySecret, endpoint, protocol: 'https', regionId: REGION, ca: caPem });
  if (signatureAlgorithm) cfg.signatureAlgorithm = signatureAlgorithm;
  return new Client(cfg);
}

async function failure(promise) {
  try {
    await promise;
  } catch (e) {
    return [e.code, e.statusCode ?? (e.data && e.data.statusCode)];
  }
  assert.fail('the call succeeded but should have failed');
}

async function active(c, gw) {
  for (let i = 0; i < 200; i++) {
    const g = (await c.describeVpnGateway(new Vpc.DescribeVpnGatewayRequest({ regionId: REGION, vpnGatewayId: gw }))).body;
    if (g.status === 'active') return g;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`${gw} never became active`);
}

async function dualGateway(c) {
  const vpc = (await c.createVpc(new Vpc.CreateVpcRequest({ regionId: REGION, cidrBlock: '10.0.0.0/8' }))).body.vpcId;
  const a = (await c.createVSwitch(new Vpc.CreateVSwitchRequest({ regionId: REGION, vpcId: vpc, zoneId: 'cn-hangzhou-h', cidrBlock: '10.1.0.0/16' }))).body.vSwitchId;
  const b = (await c.createVSwitch(new Vpc.CreateVSwitchRequest({ regionId: REGION, vpcId: vpc, zoneId: 'cn-hangzhou-i', cidrBlock: '10.2.0.0/16' }))).body.vSwitchId;
  // A boolean goes out as lower-case `true`.
  const gw = (await c.createVpnGateway(new Vpc.CreateVpnGatewayRequest({
    regionId: REGION, vpcId: vpc, vSwitchId: a, disasterRecoveryVSwitchId: b, bandwidth: 5, instanceChargeType: 'POSTPAY', enableSsl: true,
  }))).body.vpnGatewayId;
  return { vpc, gw: await active(c, gw) };
}

test('a dual-tunnel connection through chunked ACS3 form bodies, with the SDK model types', async () => {
  const c = client();
  const { gw } = await dualGateway(c);
  assert.equal(gw.sslVpn, 'enable');
  assert.equal(gw.spec, '5M');
  // A space and a bare `*` in the query: Node sends `%20` and leaves `*` unescaped.
  const cgws = [];
  for (const ip of ['203.0.113.61', '203.0.113.62']) {
    cgws.push((await c.createCustomerGateway(new Vpc.CreateCustomerGatewayRequest({ regionId: REGION, ipAddress: ip, description: 'site a*b', asn: '65010' }))).body);
  }
  assert.equal(cgws[0].description, 'site a*b');
  const TOS = Vpc.CreateVpnConnectionRequestTunnelOptionsSpecification;
  const IKE = Vpc.CreateVpnConnectionRequestTunnelOptionsSpecificationTunnelIkeConfig;
  const vco = (await c.createVpnConnection(new Vpc.CreateVpnConnectionRequest({
    regionId: REGION, vpnGatewayId: gw.vpnGatewayId, localSubnet: '10.1.0.0/16', remoteSubnet: '192.168.10.0/24', effectImmediately: false,
    tunnelOptionsSpecification: [
      new TOS({ customerGatewayId: cgws[0].customerGatewayId, role: 'master', tunnelIkeConfig: new IKE({ psk: 'node-master', ikeVersion: 'ikev2' }) }),
      new TOS({ customerGatewayId: cgws[1].customerGatewayId, role: 'slave', enableDpd: false }),
    ],
  }))).body.vpnConnectionId;
  await active(c, gw.vpnGatewayId);
  const d = (await c.describeVpnConnection(new Vpc.DescribeVpnConnectionRequest({ regionId: REGION, vpnConnectionId: vco }))).body;
  const [m, s] = d.tunnelOptionsSpecification.tunnelOptions;
  assert.deepEqual([m.role, s.role], ['master', 'slave']);
  assert.equal(m.tunnelIkeConfig.psk, 'node-master');
  assert.equal(s.enableDpd, 'false', 'the SDK model types these tunnel fields as strings');
  assert.equal(d.effectImmediately, false);
  // One tunnel changes through ModifyTunnelAttribute (an object flattened without an index).
  const MS = Vpc.ModifyTunnelAttributeRequestTunnelOptionsSpecification;
  const MIKE = Vpc.ModifyTunnelAttributeRequestTunnelOptionsSpecificationTunnelIkeConfig;
  const t = (await c.modifyTunnelAttribute(new Vpc.ModifyTunnelAttributeRequest({
    regionId: REGION, vpnConnectionId: vco, tunnelId: s.tunnelId, tunnelOptionsSpecification: new MS({ tunnelIkeConfig: new MIKE({ psk: 'node-slave', ikeLifetime: 3600 }) }),
  }))).body;
  assert.deepEqual([t.tunnelId, t.tunnelIkeConfig.psk, t.tunnelIkeConfig.ikeLifetime], [s.tunnelId, 'node-slave', 3600]);
});

test('tags, paging, RPC v1 signing, and the error envelope', async () => {
  const c = client();
  const { gw } = await dualGateway(c);
  const id = gw.vpnGatewayId;
  await c.tagResources(new Vpc.TagResourcesRequest({ regionId: REGION, resourceType: 'VpnGateWay', resourceId: [id], tag: [new Vpc.TagResourcesRequestTag({ key: 'team', value: 'net ops' })] }));
  const tags = (await c.listTagResources(new Vpc.ListTagResourcesRequest({ regionId: REGION, resourceType: 'VpnGateWay', resourceId: [id] }))).body.tagResources.tagResource;
  assert.deepEqual(tags.map((x) => [x.tagKey, x.tagValue]), [['team', 'net ops']]);
  const v1 = client('alice', 'v2');
  const listed = (await v1.describeVpnGateways(new Vpc.DescribeVpnGatewaysRequest({ regionId: REGION, vpnGatewayId: id, pageSize: 1 }))).body;
  assert.deepEqual([listed.totalCount, listed.pageSize, listed.vpnGateways.vpnGateway[0].vpnGatewayId], [1, 1, id]);
  assert.deepEqual(listed.vpnGateways.vpnGateway[0].tags.tag.map((x) => x.key), ['team']);
  // Another account's gateway does not exist for it; bad input is refused with its code.
  assert.deepEqual(await failure(client('bob').describeVpnGateway(new Vpc.DescribeVpnGatewayRequest({ regionId: REGION, vpnGatewayId: id }))), ['InvalidVpnGatewayInstanceId.NotFound', 404]);
  assert.deepEqual(await failure(c.createCustomerGateway(new Vpc.CreateCustomerGatewayRequest({ regionId: REGION, ipAddress: '300.1.1.1' }))), ['InvalidIpAddress.WrongFormat', 400]);
});

test('the newer actions: attachments with VCO routes, enhanced gateways, CheckVpnBgpEnabled, the VPC reads', async () => {
  const c = client();
  assert.equal((await c.checkVpnBgpEnabled(new Vpc.CheckVpnBgpEnabledRequest({ regionId: REGION }))).body.bgpEnabled, false);
  const vpc = (await c.createVpc(new Vpc.CreateVpcRequest({ regionId: REGION, cidrBlock: '10.0.0.0/8' }))).body.vpcId;
  const vsw = (await c.createVSwitch(new Vpc.CreateVSwitchRequest({ regionId: REGION, vpcId: vpc, zoneId: 'cn-hangzhou-h', cidrBlock: '10.1.0.0/16' }))).body.vSwitchId;
  const attr = (await c.describeVpcAttribute(new Vpc.DescribeVpcAttributeRequest({ regionId: REGION, vpcId: vpc }))).body;
  assert.deepEqual([attr.vpcId, attr.vSwitchIds.vSwitchId, attr.secondaryCidrBlocks.secondaryCidrBlock], [vpc, [vsw], []]);
  const enh = (await c.createEnhancedVpnGateway(new Vpc.CreateEnhancedVpnGatewayRequest({ regionId: REGION, vpcId: vpc, vSwitchId: vsw, gatewayType: 'Enhanced.SiteToSite' }))).body.vpnGatewayId;
  await active(c, enh);
  assert.equal((await c.describeVpnGateway(new Vpc.DescribeVpnGatewayRequest({ regionId: REGION, vpnGatewayId: enh }))).body.gatewayType, 'Enhanced.SiteToSite');
  const cgw = (await c.createCustomerGateway(new Vpc.CreateCustomerGatewayRequest({ regionId: REGION, ipAddress: '203.0.113.250' }))).body.customerGatewayId;
  const att = (await c.createVpnAttachment(new Vpc.CreateVpnAttachmentRequest({ regionId: REGION, customerGatewayId: cgw, localSubnet: '0.0.0.0/0', remoteSubnet: '0.0.0.0/0' }))).body;
  assert.equal(att.success, true);
  const vco = att.vpnConnectionId;
  const state = async () => (await c.describeVpnConnection(new Vpc.DescribeVpnConnectionRequest({ regionId: REGION, vpnConnectionId: vco }))).body.state;
  for (let i = 0; i < 200 && (await state()) !== 'init'; i++) await new Promise((r) => setTimeout(r, 50));
  const route = (await c.createVcoRouteEntry(new Vpc.CreateVcoRouteEntryRequest({ regionId: REGION, vpnConnectionId: vco, routeDest: '192.168.9.0/24', nextHop: vco, weight: 100 }))).body;
  assert.deepEqual([route.routeDest, route.weight, route.state], ['192.168.9.0/24', 100, 'normal']);
  for (let i = 0; i < 200 && (await state()) !== 'init'; i++) await new Promise((r) => setTimeout(r, 50));
  const routes = (await c.describeVcoRouteEntries(new Vpc.DescribeVcoRouteEntriesRequest({ regionId: REGION, vpnConnectionId: vco, routeEntryType: 'custom' }))).body;
  assert.deepEqual(routes.vcoRouteEntries.map((r) => [r.routeDest, r.nextHop, r.weight]), [['192.168.9.0/24', vco, 100]]);
  const listed = (await c.describeVpnAttachments(new Vpc.DescribeVpnAttachmentsRequest({ regionId: REGION, vpnConnectionId: vco }))).body;
  assert.deepEqual([listed.totalCount, listed.vpnAttachments[0].attachType], [1, 'NO_ASSOCIATED']);
  assert.equal((await c.deleteVpnAttachment(new Vpc.DeleteVpnAttachmentRequest({ regionId: REGION, vpnConnectionId: vco }))).body.success, true);
});
