// The web console in a real browser: Debian's chromium, headless, driven by playwright-core.
// A lab-mode vpngw (root) with a gateway and a connection whose customer site is configured
// from its download; the console is opened from a one-time link printed by
// `vpngw console login`, lists the gateway, and shows the connection's tunnel turning
// established by itself. Screenshots are kept in target/console-screenshots/.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const Vpc = require('@alicloud/vpc20160428');
const { freePort, healthy } = require('./helpers');
const $OpenApi = require('@alicloud/openapi-client');
const { chromium } = require('playwright-core');

const REGION = 'cn-hangzhou';
const ROOT = path.join(__dirname, '..', '..');
const BIN = process.env.VPNGW_BIN || path.join(ROOT, 'target', 'debug', 'vpngw');
const SHOTS = path.join(ROOT, 'target', 'console-screenshots');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const LAB = 'c' + Math.random().toString(16).slice(2, 8);
const KEY = ['AKCONSOLE00000000001', 'console-secret'];

let dir;
let server;
let endpoint;

function cli(...args) {
  return execFileSync(BIN, [...args, '--config', path.join(dir, 'vpngw.toml'), '--data-dir', path.join(dir, 'data')], { encoding: 'utf8' });
}

const skip = process.getuid() !== 0 ? 'the lab needs root' : !fs.existsSync(CHROMIUM) ? `no browser at ${CHROMIUM}` : false;

before(async () => {
  if (skip) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vpngw-console-'));
  fs.writeFileSync(path.join(dir, 'vpngw.toml'), `transition_ms = 150
metrics_listen = "127.0.0.1:0"
[[accounts]]
name = "alice"
access_key_id = "${KEY[0]}"
access_key_secret = "${KEY[1]}"
[dataplane]
mode = "lab"
lab_name = "${LAB}"
reconcile_interval_ms = 500
`);
  endpoint = `127.0.0.1:${await freePort()}`;
  const log = fs.openSync(path.join(dir, 'serve.log'), 'a');
  server = spawn(BIN, ['serve', '--config', path.join(dir, 'vpngw.toml'), '--data-dir', path.join(dir, 'data'), '--listen', endpoint], { stdio: ['ignore', log, log] });
  for (let i = 0; i < 300 && !(await healthy(endpoint)); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(await healthy(endpoint), 'vpngw became healthy');
});

after(() => server && server.kill('SIGTERM'));

async function until(what, f, ms = 45000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) assert.fail(`never: ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test('the console signs in from a one-time link and shows a tunnel turning established', { skip }, async () => {
  const c = new Vpc.default(new $OpenApi.Config({ accessKeyId: KEY[0], accessKeySecret: KEY[1], endpoint, protocol: 'http', regionId: REGION }));
  const vpc = (await c.createVpc(new Vpc.CreateVpcRequest({ regionId: REGION, cidrBlock: '10.0.0.0/8' }))).body.vpcId;
  const vsw = (await c.createVSwitch(new Vpc.CreateVSwitchRequest({ regionId: REGION, vpcId: vpc, zoneId: 'cn-hangzhou-h', cidrBlock: '10.1.0.0/16' }))).body.vSwitchId;
  const gw = (await c.createVpnGateway(new Vpc.CreateVpnGatewayRequest({ regionId: REGION, vpcId: vpc, vSwitchId: vsw, bandwidth: 5, name: 'console-gw' }))).body.vpnGatewayId;
  await until('gateway active', async () => (await c.describeVpnGateway(new Vpc.DescribeVpnGatewayRequest({ regionId: REGION, vpnGatewayId: gw }))).body.status === 'active');
  const cgw = (await c.createCustomerGateway(new Vpc.CreateCustomerGatewayRequest({ regionId: REGION, ipAddress: '203.0.113.131' }))).body.customerGatewayId;
  const vco = (await c.createVpnConnection(new Vpc.CreateVpnConnectionRequest({
    regionId: REGION, vpnGatewayId: gw, customerGatewayId: cgw, localSubnet: '10.1.0.0/16', remoteSubnet: '10.131.0.0/24', name: 'to-branch', effectImmediately: true,
  }))).body.vpnConnectionId;
  await until('gateway active again', async () => (await c.describeVpnGateway(new Vpc.DescribeVpnGatewayRequest({ regionId: REGION, vpnGatewayId: gw }))).body.status === 'active');

  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  try {
    fs.mkdirSync(SHOTS, { recursive: true });
    const page = await browser.newPage();
    // The one-time link is the last line `vpngw console login` prints.
    const link = cli('console', 'login', 'alice', '--endpoint', `http://${endpoint}`).trim().split('\n').pop();
    await page.goto(link);
    await page.waitForURL(/\/console\/#gateways$/);
    await page.getByRole('link', { name: gw }).waitFor();
    await page.screenshot({ path: path.join(SHOTS, '1-gateways.png'), fullPage: true });
    // The link works once.
    const again = await (await browser.newPage()).goto(link);
    assert.equal(again.status(), 403);

    await page.getByRole('link', { name: gw }).click();
    await page.getByRole('link', { name: vco }).waitFor();
    assert.match(await page.textContent('main'), /ike_sa_not_established/);
    await page.screenshot({ path: path.join(SHOTS, '2-gateway-before.png'), fullPage: true });

    // The customer site, configured from the connection's download; the page refreshes by itself.
    const api = new $OpenApi.default(new $OpenApi.Config({ accessKeyId: KEY[0], accessKeySecret: KEY[1], endpoint, protocol: 'http', regionId: REGION }));
    const params = new $OpenApi.Params({ action: 'DownloadVpnConnectionConfig', version: '2016-04-28', protocol: 'HTTP', pathname: '/', method: 'POST', authType: 'AK', style: 'RPC', reqBodyType: 'formData', bodyType: 'json' });
    const got = await api.callApi(params, new $OpenApi.OpenApiRequest({ query: { RegionId: REGION, VpnConnectionId: vco, DeviceType: 'strongswan' } }), {});
    const conf = path.join(dir, 'site.conf');
    fs.writeFileSync(conf, got.body.VpnConnectionConfig.DeviceConfig);
    cli('lab', 'site', 'create', 'branch', '--ip', '203.0.113.131', '--subnet', '10.131.0.0/24', '--swanctl', conf);
    await page.getByText('ipsec_sa_established').first().waitFor({ timeout: 45000 });
    await page.screenshot({ path: path.join(SHOTS, '3-gateway-established.png'), fullPage: true });

    // The connection's page: its tunnel and charon's log lines for it.
    await page.getByRole('link', { name: vco }).click();
    await page.getByText('Log (last 10 minutes)').waitFor();
    await until('log lines', async () => /IKE_SA|CHILD_SA/.test(await page.textContent('pre')));
    await page.screenshot({ path: path.join(SHOTS, '4-connection.png'), fullPage: true });

    // Signing in with a key pair works too; a wrong secret is refused with the API's code.
    const other = await browser.newPage();
    await other.goto(`http://${endpoint}/console/`);
    await other.fill('input[name=ak]', KEY[0]);
    await other.fill('input[name=secret]', 'wrong');
    await other.click('form button');
    await other.getByText('SignatureDoesNotMatch').waitFor();
    await other.fill('input[name=secret]', KEY[1]);
    await other.click('form button');
    await other.getByRole('link', { name: gw }).waitFor();
  } finally {
    await browser.close();
    try { cli('lab', 'site', 'delete', 'branch'); } catch (_) { /* the lab goes with the server */ }
  }
});
