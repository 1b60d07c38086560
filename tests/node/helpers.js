// What the Node tests share: a free port and a server's health.
'use strict';

const http = require('node:http');
const net = require('node:net');

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Whether the server at `endpoint` (host:port) answers /healthz. */
function healthy(endpoint) {
  return new Promise((resolve) => {
    http.get(`http://${endpoint}/healthz`, (r) => { r.resume(); resolve(r.statusCode === 200); }).on('error', () => resolve(false));
  });
}

module.exports = { freePort, healthy };
