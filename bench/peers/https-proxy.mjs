// The http-proxy peer over HTTPS: Node's https server in one process, keep-alive to the backend
// as http-proxy's README recommends, the same certificate, TLS versions, ciphers and server cipher
// order as Flow Proxy, HTTP/1.1 by ALPN (Node's https server has no HTTP/2).
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import httpProxy from 'http-proxy';

const [port, target, certFile, keyFile, ciphers] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const proxy = httpProxy.createProxyServer({ target, agent, xfwd: true });
proxy.on('error', (_error, _req, res) => {
  res.writeHead?.(502);
  res.end();
});
const tls = {
  cert: readFileSync(certFile),
  key: readFileSync(keyFile),
  minVersion: 'TLSv1.2',
  maxVersion: 'TLSv1.3',
  ciphers,
  honorCipherOrder: true,
  ALPNProtocols: ['http/1.1'],
};
https.createServer(tls, (req, res) => proxy.web(req, res)).listen(Number(port), '127.0.0.1');
