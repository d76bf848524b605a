#!/usr/bin/env node
// The benchmark's latency profile: an HTTP server on 127.0.0.1 that hands
// every request on to an upstream S3 server (s3rver) only after a fixed delay,
// as a real S3 endpoint answers after tens of milliseconds. Node.js only, no
// dependencies.
//
//   node bench/latency_proxy.js --upstream http://127.0.0.1:PORT
//        [--port N] [--delay-ms MS]
//
// --delay-ms defaults to BENCH_LATENCY_MS, else 20. --port 0 (the default)
// takes a free port; the port is printed on stdout as "listening PORT".
//
// Each request waits the delay once (from the moment its headers arrived),
// then goes upstream with its method, path, query and headers unchanged (the
// Host header too: SigV4 signatures stay valid), except the hop-by-hop ones.
// Bodies stream both ways (pipe, with back-pressure): no object is ever held
// whole. "Expect: 100-continue" is handed on: the client receives 100 when
// the upstream sends it. Connections are kept alive on both sides.
//
// GET /__bench/stats (a path no bucket can have) answers, without delay,
// {"requests","inflight","maxInflight"} since start or
// the last ?reset=1: how many requests a step made and how many it kept in
// flight at once.
'use strict';

const http = require('http');

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

const upstream = new URL(arg('--upstream', process.env.BENCH_UPSTREAM || ''));
const port = Number(arg('--port', '0'));
const delayMs = Number(arg('--delay-ms', process.env.BENCH_LATENCY_MS || '20'));
if (upstream.protocol !== 'http:' || !Number.isFinite(delayMs) || delayMs < 0) {
  process.stderr.write('usage: latency_proxy.js --upstream http://HOST:PORT [--port N] [--delay-ms MS]\n');
  process.exit(2);
}

// Idle upstream sockets are dropped after 4 s, before s3rver's own 5 s
// keep-alive timeout could close one under a request.
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 1024, timeout: 4000 });
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade']);

let stats = { requests: 0, inflight: 0, maxInflight: 0 };

function cleanHeaders(h) {
  const out = {};
  for (const k of Object.keys(h)) if (!HOP.has(k)) out[k] = h[k];
  return out;
}

function forward(req, res) {
  if (req.url.startsWith('/__bench/stats')) {
    const body = JSON.stringify(stats) + '\n';
    if (req.url.includes('reset=1')) {
      stats = { requests: 0, inflight: stats.inflight, maxInflight: stats.inflight };
    }
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
    req.resume();
    return;
  }
  stats.requests++;
  stats.inflight++;
  if (stats.inflight > stats.maxInflight) stats.maxInflight = stats.inflight;
  let done = false;
  const finish = () => {
    if (!done) {
      done = true;
      stats.inflight--;
    }
  };
  res.on('close', finish);
  const expect = /100-continue/i.test(req.headers.expect || '');

  setTimeout(() => {
    if (res.destroyed) return;
    const up = http.request({
      host: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers: cleanHeaders(req.headers),
      agent,
    });
    let piped = false;
    const pipeBody = () => {
      if (!piped) {
        piped = true;
        req.pipe(up);
      }
    };
    up.on('continue', () => {
      res.writeContinue();
      pipeBody();
    });
    up.on('response', (ur) => {
      res.writeHead(ur.statusCode, ur.statusMessage, cleanHeaders(ur.headers));
      ur.pipe(res);
      ur.on('error', () => res.destroy());
      if (!piped) {
        // A final answer to "Expect: 100-continue": the body is not wanted;
        // drain what the client sends anyway.
        piped = true;
        up.end();
        req.resume();
      }
    });
    up.on('error', (e) => {
      if (!res.headersSent) {
        const body = 'latency_proxy: upstream ' + e.code + '\n';
        res.writeHead(502, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), connection: 'close' });
        res.end(body);
      } else {
        res.destroy();
      }
      req.resume();
    });
    req.on('error', () => up.destroy());
    res.on('close', () => {
      if (!res.writableFinished) up.destroy();
    });
    if (expect) {
      up.flushHeaders();
    } else {
      pipeBody();
    }
  }, delayMs);
}

const server = http.createServer(forward);
server.on('checkContinue', forward);
server.keepAliveTimeout = 60000;
server.headersTimeout = 65000;
server.requestTimeout = 0;
server.on('clientError', (e, sock) => sock.destroy());
server.listen(port, '127.0.0.1', () => {
  process.stdout.write('listening ' + server.address().port + ' delay-ms ' + delayMs +
    ' upstream ' + upstream.host + '\n');
});
// (no SIGTERM handler: the default action ends the process at once, however
// busy its event loop is)
