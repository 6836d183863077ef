// Shared pieces of the test servers: options, clients, users, the readiness contract,
// request counters and small HTTP helpers. Everything here listens on 127.0.0.1 only.

import http from 'node:http';

/** Parses the optional JSON options object given as the first CLI argument. */
export function parseOptions(defaults) {
  const raw = process.argv[2];
  let given = {};
  if (raw !== undefined && raw.trim() !== '') {
    try {
      given = JSON.parse(raw);
    } catch (err) {
      console.error(`options must be a JSON object: ${err.message}`);
      process.exit(2);
    }
    if (given === null || typeof given !== 'object' || Array.isArray(given)) {
      console.error('options must be a JSON object');
      process.exit(2);
    }
  }
  const unknown = Object.keys(given).filter((k) => !(k in defaults));
  if (unknown.length !== 0) {
    console.error(`unknown options: ${unknown.join(', ')}; known: ${Object.keys(defaults).join(', ')}`);
    process.exit(2);
  }
  return { ...defaults, ...given };
}

// Client secrets are VSCHAR (RFC 6749 appendix A.2: %x20-7E), which both servers enforce.
// The special one holds every character that RFC 6749 §2.3.1 form-encoding changes.
export const CLIENTS = {
  basic: { id: 'basic-client', secret: 'basic-secret', method: 'client_secret_basic' },
  post: { id: 'post-client', secret: 'post-secret', method: 'client_secret_post' },
  special: { id: 'special-client', secret: 's3cr:t/+%&= x', method: 'client_secret_basic' },
  pkce: { id: 'pkce-client', secret: undefined, method: 'none' },
};

export const REDIRECT_URI = 'http://127.0.0.1/callback';

// username -> password. The account id (`sub`) is the username itself, so a resource call
// shows whether the username arrived verbatim.
export const USERS = new Map([
  ['joe', 'pw-joe'],
  ['1234/joe.bloggs@acme.com', 'secret1234'],
]);

export const SCOPES = ['openid', 'offline_access', 'api', 'datahub-api', 'qflowapi'];

/** Counters served by GET /test/stats and cleared by POST /test/stats/reset. */
export function newStats() {
  return {
    // POST /token requests by grant_type, whatever their outcome ("(none)" when absent).
    token_requests: {},
    // Error codes answered by the token endpoint.
    token_errors: {},
    resource_calls: 0,
    resource_ok: 0,
    resource_401: 0,
    resource_403: 0,
    revocations: 0,
    introspections: 0,
  };
}

export function bump(map, key) {
  map[key] = (map[key] ?? 0) + 1;
}

export function sendJson(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

export function readBody(req, limit = 1 << 20) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > limit) {
        reject(new Error('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Binds an HTTP server to 127.0.0.1 on a free port and resolves with the server and port. */
export function listenLoopback() {
  const server = http.createServer();
  // Node closes a keep-alive connection after 5 s idle by default. A client pool may pick
  // such a connection in the instant the server closes it, and the request then fails with a
  // reset that no client can tell apart from a server fault. Idle connections here live
  // longer than any test, so a reset means a real fault.
  server.keepAliveTimeout = 10 * 60 * 1000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve({ server, port: server.address().port });
    });
  });
}

/**
 * The readiness contract: one JSON line on stdout once listening, everything else on stderr,
 * and exit as soon as stdin closes so a crashed parent never leaves a server behind.
 */
export function announceReady(issuer, port) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('close', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
  process.stdout.write(`${JSON.stringify({ ready: true, issuer, port })}\n`);
}

// Anything a library prints goes to stderr; stdout carries the ready line only.
console.log = console.error;
console.info = console.error;
console.warn = console.error;
