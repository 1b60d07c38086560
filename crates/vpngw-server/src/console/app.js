// The vpngw console: a small page over the same API every client uses. Each call is signed in
// the browser with ACS3-HMAC-SHA256 under the AccessKey the user signed in with (kept in this
// tab's sessionStorage only), so the console can do exactly what the key may do and no more.
'use strict';

// ---- SHA-256 and HMAC, in plain JavaScript (WebCrypto is missing outside secure contexts) ----
const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
  0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]);

function sha256(bytes) {
  const len = bytes.length, total = ((len + 9 + 63) >> 6) << 6;
  const m = new Uint8Array(total);
  m.set(bytes); m[len] = 0x80;
  const bits = len * 8;
  for (let i = 0; i < 8; i++) m[total - 1 - i] = Math.floor(bits / 2 ** (8 * i)) & 0xff;
  const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const w = new Uint32Array(64);
  const r = (x, n) => (x >>> n) | (x << (32 - n));
  for (let o = 0; o < total; o += 64) {
    for (let i = 0; i < 16; i++) w[i] = (m[o + 4 * i] << 24) | (m[o + 4 * i + 1] << 16) | (m[o + 4 * i + 2] << 8) | m[o + 4 * i + 3];
    for (let i = 16; i < 64; i++) {
      const s0 = r(w[i - 15], 7) ^ r(w[i - 15], 18) ^ (w[i - 15] >>> 3), s1 = r(w[i - 2], 17) ^ r(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = (hh + (r(e, 6) ^ r(e, 11) ^ r(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
      const t2 = ((r(a, 2) ^ r(a, 13) ^ r(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      hh = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  }
  const out = new Uint8Array(32);
  for (let i = 0; i < 8; i++) { out[4 * i] = h[i] >>> 24; out[4 * i + 1] = (h[i] >>> 16) & 255; out[4 * i + 2] = (h[i] >>> 8) & 255; out[4 * i + 3] = h[i] & 255; }
  return out;
}

const utf8 = (s) => new TextEncoder().encode(s);
const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

function hmac(key, msg) {
  let k = key.length > 64 ? sha256(key) : key;
  const pad = new Uint8Array(64); pad.set(k);
  const inner = new Uint8Array(64 + msg.length), outer = new Uint8Array(96);
  for (let i = 0; i < 64; i++) { inner[i] = pad[i] ^ 0x36; outer[i] = pad[i] ^ 0x5c; }
  inner.set(msg, 64);
  outer.set(sha256(inner), 64);
  return sha256(outer);
}

// ---- the API, signed (ACS3-HMAC-SHA256) ----
const pct = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
const session = () => JSON.parse(sessionStorage.getItem('vpngw') || 'null');

async function call(action, params = {}) {
  const s = session();
  const q = { RegionId: s.region, ...params };
  const query = Object.keys(q).filter((k) => q[k] !== undefined && q[k] !== null).sort().map((k) => `${pct(k)}=${pct(String(q[k]))}`).join('&');
  const nonce = hex(crypto.getRandomValues(new Uint8Array(16)));
  const headers = {
    'host': location.host, 'x-acs-action': action, 'x-acs-content-sha256': hex(sha256(new Uint8Array())),
    'x-acs-date': new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'), 'x-acs-signature-nonce': nonce, 'x-acs-version': '2016-04-28',
  };
  const names = Object.keys(headers).sort();
  const canonical = ['POST', '/', query, names.map((n) => `${n}:${headers[n]}`).join('\n') + '\n', names.join(';'), headers['x-acs-content-sha256']].join('\n');
  const toSign = 'ACS3-HMAC-SHA256\n' + hex(sha256(utf8(canonical)));
  const signature = hex(hmac(utf8(s.secret), utf8(toSign)));
  const sent = { ...headers, authorization: `ACS3-HMAC-SHA256 Credential=${s.ak},SignedHeaders=${names.join(';')},Signature=${signature}` };
  delete sent.host;
  const res = await fetch('/?' + query, { method: 'POST', headers: sent });
  const body = await res.json();
  if (!res.ok) { const e = new Error(`${body.Code}: ${body.Message}`); e.code = body.Code; throw e; }
  return body;
}

// ---- views ----
const view = () => document.getElementById('view');
const esc = (v) => String(v ?? '').replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]));
const status = (s) => `<span class="${s === 'ipsec_sa_established' || s === 'success' || s === 'active' || s === 'init' ? 'ok' : s === 'ike_sa_established' || s === 'updating' ? 'mid' : 'bad'}">${esc(s)}</span>`;
const table = (cols, rows) => `<table><tr>${cols.map((c) => `<th>${esc(c)}</th>`).join('')}</tr>${rows.length ? rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('') : `<tr><td colspan="${cols.length}" class="muted">None.</td></tr>`}</table>`;
let timer = null;

function signIn(message) {
  document.getElementById('who').textContent = '';
  document.getElementById('signout').hidden = true;
  view().innerHTML = `<h1>Sign in</h1><form id="f"><label>AccessKey ID <input name="ak" required autocomplete="username"></label>
    <label>AccessKey secret <input name="secret" type="password" required autocomplete="current-password"></label>
    <label>Region <input name="region" value="cn-hangzhou" required></label><button>Sign in</button>
    <p class="err" id="err">${esc(message || '')}</p></form>`;
  document.getElementById('f').onsubmit = async (ev) => {
    ev.preventDefault();
    const d = new FormData(ev.target);
    sessionStorage.setItem('vpngw', JSON.stringify({ ak: d.get('ak'), secret: d.get('secret'), region: d.get('region') }));
    try { await call('DescribeRegions'); location.hash = '#gateways'; route(); } catch (e) { sessionStorage.removeItem('vpngw'); document.getElementById('err').textContent = e.message; }
  };
}

async function gateways() {
  const [gws, atts] = await Promise.all([call('DescribeVpnGateways', { PageSize: 50 }), call('DescribeVpnAttachments', { PageSize: 50 })]);
  view().innerHTML = `<h1>VPN gateways</h1>` + table(['Gateway', 'Name', 'Type', 'Status', 'Public address', 'IPsec', 'SSL-VPN'],
    gws.VpnGateways.VpnGateway.map((g) => [`<a href="#gateway/${esc(g.VpnGatewayId)}">${esc(g.VpnGatewayId)}</a>`, esc(g.Name), esc(g.GatewayType), status(g.Status), esc(g.InternetIp), esc(g.IpsecVpn), esc(g.SslVpn)]))
    + `<h2>VPN attachments</h2>` + table(['Connection', 'Name', 'Attached to'], atts.VpnAttachments.map((a) => [`<a href="#connection/${esc(a.InstanceId)}">${esc(a.InstanceId)}</a>`, esc(a.Name), esc(a.AttachType)]));
}

function tunnelRows(c) {
  const t = c.TunnelOptionsSpecification?.TunnelOptions || [];
  if (!t.length) return [[esc(c.VpnConnectionId), '', status(c.Status), esc(c.VpnBgpConfig?.Status || ''), esc(c.VcoHealthCheck?.Status || '')]];
  return t.map((x) => [esc(x.TunnelId), esc(x.Role), status(x.Status), esc(x.TunnelBgpConfig?.BgpStatus || ''), esc(c.VcoHealthCheck?.Status || '')]);
}

async function gateway(id) {
  const [g, conns, routes, ssl, ipsec] = await Promise.all([
    call('DescribeVpnGateway', { VpnGatewayId: id }), call('DescribeVpnConnections', { VpnGatewayId: id, PageSize: 50 }),
    call('DescribeVpnRouteEntries', { VpnGatewayId: id, PageSize: 50 }), call('DescribeSslVpnServers', { VpnGatewayId: id, PageSize: 50 }),
    call('ListIpsecServers', { VpnGatewayId: id, MaxResults: 20 })]);
  const servers = ssl.SslVpnServers.SslVpnServer;
  const clients = servers.length && g.SslVpn === 'enable' ? await call('DescribeSslVpnClients', { VpnGatewayId: id, PageSize: 50 }) : { ClientInfoList: [] };
  view().innerHTML = `<h1>${esc(g.Name)} <span class="muted">${esc(id)}</span></h1>
    <p>${status(g.Status)} · ${esc(g.GatewayType)} · ${esc(g.InternetIp)} · VPC ${esc(g.VpcId)}</p>
    <h2>IPsec connections</h2>` + table(['Connection', 'Name', 'Tunnel', 'Role', 'Negotiation', 'BGP', 'Health'],
    conns.VpnConnections.VpnConnection.flatMap((c) => tunnelRows(c).map((r, i) => [i ? '' : `<a href="#connection/${esc(c.VpnConnectionId)}">${esc(c.VpnConnectionId)}</a>`, i ? '' : esc(c.Name), ...r])))
    + `<h2>Routes</h2>` + table(['Destination', 'Next hop', 'Weight', 'Type', 'State'], routes.VpnRouteEntries.VpnRouteEntry.map((r) => [esc(r.RouteDest), esc(r.NextHop), esc(r.Weight), esc(r.RouteEntryType), esc(r.State)]))
    + `<h2>SSL-VPN servers</h2>` + table(['Server', 'Name', 'Client pool', 'Protocol', 'Port', 'Connections'], servers.map((s) => [esc(s.SslVpnServerId), esc(s.Name), esc(s.ClientIpPool), esc(s.Proto), esc(s.Port), `${esc(s.Connections)} / ${esc(s.MaxConnections)}`]))
    + `<h2>SSL-VPN clients online</h2>` + table(['Certificate', 'Client address', 'Connected'], (clients.ClientInfoList || []).map((c) => [esc(c.CommonName), esc(c.PrivateIp), esc(c.ConnectedTime)]))
    + `<h2>IPsec servers</h2>` + table(['Server', 'Name', 'Client pool', 'Online'], ipsec.IpsecServers.map((s) => [esc(s.IpsecServerId), esc(s.IpsecServerName), esc(s.ClientIpPool), esc(s.OnlineClientCount)]));
}

async function connection(id) {
  const c = await call('DescribeVpnConnection', { VpnConnectionId: id });
  let logs = [];
  try { logs = (await call('DescribeVpnConnectionLogs', { VpnConnectionId: id, MinutePeriod: 10, PageSize: 50 })).Data.Logs || []; } catch (e) { logs = [`(logs unavailable: ${e.message})`]; }
  view().innerHTML = `<h1>${esc(c.Name)} <span class="muted">${esc(id)}</span></h1>
    <p>${status(c.State)} · ${c.VpnGatewayId ? `gateway <a href="#gateway/${esc(c.VpnGatewayId)}">${esc(c.VpnGatewayId)}</a>` : `attachment (${esc(c.AttachType)})`} · ${esc(c.InternetIp)} · local ${esc(c.LocalSubnet)} · remote ${esc(c.RemoteSubnet)}</p>
    <h2>Tunnels</h2>` + table(['Tunnel', 'Role', 'Negotiation', 'BGP', 'Health'], tunnelRows(c))
    + `<h2>Log (last 10 minutes)</h2><pre>${esc(logs.join('\n'))}</pre>`;
}

async function route() {
  clearTimeout(timer);
  const s = session();
  if (!s) return signIn();
  document.getElementById('who').textContent = `${s.ak} · ${s.region}`;
  document.getElementById('signout').hidden = false;
  const [page, id] = (location.hash.slice(1) || 'gateways').split('/');
  try {
    if (page === 'gateway') await gateway(id); else if (page === 'connection') await connection(id); else await gateways();
  } catch (e) {
    if (e.code && e.code.startsWith('InvalidAccessKeyId')) { sessionStorage.removeItem('vpngw'); return signIn(e.message); }
    view().innerHTML = `<p class="err">${esc(e.message)}</p>`;
  }
  // Live: each page reads again by itself.
  timer = setTimeout(route, 2000);
}

document.getElementById('signout').onclick = () => { sessionStorage.removeItem('vpngw'); location.hash = ''; route(); };
window.addEventListener('hashchange', route);
route();
