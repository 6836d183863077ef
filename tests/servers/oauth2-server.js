// @node-oauth/oauth2-server on 127.0.0.1 with an in-memory model, for tokenflow's tests.
//
//   node oauth2-server.js '{"accessTokenTtl":2,"refreshTokenTtl":3600}'
//
// Same readiness contract as oidc.js: one JSON line on stdout, exit when stdin closes.
// Grants: password, client_credentials, refresh_token (rotating: a used refresh token is
// deleted, so presenting it again is `invalid_grant`; with `strictReuse` it also revokes the
// token family). See README.md for options and routes.

import crypto from 'node:crypto';

// First, so that its stdout guard is in place before any library loads.
import {
  CLIENTS, SCOPES, USERS,
  announceReady, bump, listenLoopback, newStats, parseOptions, readBody, sendJson,
} from './common.js';
import OAuth2Server from '@node-oauth/oauth2-server';

const { Request, Response, OAuthError } = OAuth2Server;

const opts = parseOptions({
  accessTokenTtl: 3600, // seconds, every grant
  refreshTokenTtl: 86400,
  // Take the Basic credentials as they are, without the RFC 6749 §2.3.1 form-decoding, the
  // way some servers (Cognito, UAA) do.
  rawBasicAuth: false,
  // An API gateway's dialect: `grant_type` is read from the token endpoint's query string
  // (and required there), and `expires_in` is answered as a string.
  grantTypeInQuery: false,
  expiresInAsString: false,
  // RFC 9700 §4.14.2 reuse detection: a spent refresh token presented again is refused and
  // revokes its whole family (every token descending from the same login).
  strictReuse: false,
});

const CONFIDENTIAL_GRANTS = ['password', 'client_credentials', 'refresh_token'];
const clients = new Map([
  ...[CLIENTS.basic, CLIENTS.post, CLIENTS.special].map((c) => [c.id, {
    id: c.id, secret: c.secret, grants: CONFIDENTIAL_GRANTS,
  }]),
  [CLIENTS.pkce.id, { id: CLIENTS.pkce.id, secret: undefined, grants: ['password', 'refresh_token'] }],
]);

const accessTokens = new Map(); // value -> token
const refreshTokens = new Map(); // value -> token
// strictReuse: refresh tokens retired by rotation, value -> family. A family is the chain of
// tokens descending from one login; its id rides on the user object, which the library hands
// from a refresh token to the tokens that replace it.
const spentRefreshTokens = new Map();
let families = 0;
// POST /test/delay-token: how long to hold back the next token answer, in milliseconds.
let nextTokenDelayMs = 0;

const randomToken = () => crypto.randomBytes(24).toString('base64url');

const model = {
  async getClient(clientId, clientSecret) {
    const client = clients.get(clientId);
    if (!client) return false;
    // A confidential client must authenticate; a public one must not present a secret.
    if (client.secret === undefined ? clientSecret != null : clientSecret !== client.secret) {
      return false;
    }
    return { id: client.id, grants: client.grants };
  },
  async getUser(username, password) {
    return USERS.get(username) === password ? { id: username } : false;
  },
  async getUserFromClient(client) {
    return { id: client.id };
  },
  async validateScope(user, client, scope) {
    const requested = scope ?? [];
    return requested.every((s) => SCOPES.includes(s)) ? requested : false;
  },
  async verifyScope(token, required) {
    return required.every((s) => (token.scope ?? []).includes(s));
  },
  generateAccessToken: async () => randomToken(),
  generateRefreshToken: async () => randomToken(),
  async saveToken(token, client, user) {
    const scope = token.scope ?? [];
    // A login starts a family; a refresh passes on the user object, and so the family, of the
    // token it replaces.
    if (user.family === undefined) {
      families += 1;
      user.family = families;
    }
    const saved = {
      accessToken: token.accessToken,
      accessTokenExpiresAt: token.accessTokenExpiresAt,
      scope,
      client: { id: client.id },
      user,
    };
    accessTokens.set(saved.accessToken, saved);
    // Refresh tokens only for offline access, like the providers this crate meets.
    if (token.refreshToken && scope.includes('offline_access')) {
      saved.refreshToken = token.refreshToken;
      saved.refreshTokenExpiresAt = token.refreshTokenExpiresAt;
      refreshTokens.set(saved.refreshToken, { ...saved });
    }
    return saved;
  },
  async getAccessToken(value) {
    return accessTokens.get(value) ?? false;
  },
  async getRefreshToken(value) {
    const token = refreshTokens.get(value);
    if (token) return token;
    if (opts.strictReuse && spentRefreshTokens.has(value)) revokeFamily(spentRefreshTokens.get(value));
    return false;
  },
  async revokeToken(token) {
    if (opts.strictReuse) spentRefreshTokens.set(token.refreshToken, token.user.family);
    return refreshTokens.delete(token.refreshToken);
  },
};

// A spent refresh token came back: whoever holds the family's live tokens may be a thief, so
// all of them die (the presentation itself is answered `invalid_grant`).
function revokeFamily(family) {
  stats.reuse_detections += 1;
  console.error(`[oauth2-server] refresh token reuse: revoking family ${family}`);
  let revoked = 0;
  for (const store of [accessTokens, refreshTokens]) {
    for (const [value, token] of store) {
      if (token.user.family === family) {
        store.delete(value);
        revoked += 1;
      }
    }
  }
  for (const [value, spentFamily] of spentRefreshTokens) {
    // Presenting them again is answered as for any unknown token, not counted as reuse.
    if (spentFamily === family) spentRefreshTokens.delete(value);
  }
  if (revoked > 0) stats.families_revoked += 1;
}

const oauth = new OAuth2Server({
  model,
  accessTokenLifetime: opts.accessTokenTtl,
  refreshTokenLifetime: opts.refreshTokenTtl,
  allowBearerTokensInQueryString: false,
  requireClientAuthentication: { password: true, client_credentials: true, refresh_token: true },
});
// Public clients (no secret) use the password and refresh grants without authenticating.
const publicOauth = new OAuth2Server({
  model,
  accessTokenLifetime: opts.accessTokenTtl,
  refreshTokenLifetime: opts.refreshTokenTtl,
  requireClientAuthentication: { password: false, refresh_token: false },
});

const freshStats = () => ({ ...newStats(), reuse_detections: 0, families_revoked: 0 });
const stats = freshStats();

function formDecode(part) {
  return decodeURIComponent(part.replace(/\+/g, '%20'));
}

// RFC 6749 §2.3.1: the client id and secret are form-encoded before they are joined and
// base64-encoded. The library takes the header literally, so decode here and hand it the
// plain values; a header that is not properly encoded is refused like oidc-provider does.
function decodeBasic(headers) {
  const header = headers.authorization;
  if (opts.rawBasicAuth || typeof header !== 'string') return true;
  const match = /^basic +([A-Za-z0-9+/=]+) *$/i.exec(header);
  if (!match) return true;
  const text = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 0) return true;
  try {
    const id = formDecode(text.slice(0, colon));
    const secret = formDecode(text.slice(colon + 1));
    headers.authorization = `Basic ${Buffer.from(`${id}:${secret}`, 'utf8').toString('base64')}`;
    return true;
  } catch {
    return false;
  }
}

function send(res, response) {
  const headers = { ...response.headers };
  delete headers['content-type'];
  const body = { ...(response.body ?? {}) };
  if (opts.expiresInAsString && typeof body.expires_in === 'number') {
    body.expires_in = String(body.expires_in);
  }
  sendJson(res, response.status ?? 200, body, headers);
}

async function token(req, res, url) {
  const raw = await readBody(req);
  const body = Object.fromEntries(new URLSearchParams(raw));
  const queryGrantType = url.searchParams.get('grant_type');
  if (opts.grantTypeInQuery) {
    // The gateway routes on the query; a body's grant_type, if any, must agree with it.
    if (queryGrantType === null || (body.grant_type !== undefined && body.grant_type !== queryGrantType)) {
      bump(stats.token_requests, body.grant_type ?? '(none)');
      bump(stats.token_errors, 'invalid_request');
      sendJson(res, 400, {
        error: 'invalid_request', error_description: 'grant_type must be given in the query string',
      });
      return;
    }
    body.grant_type = queryGrantType;
  }
  const grantType = body.grant_type ?? '(none)';
  bump(stats.token_requests, grantType);

  const headers = { ...req.headers };
  const request = new Request({ headers, method: req.method, query: {}, body });
  const response = new Response({ headers: {} });
  const fail = (status, error, description, extra = {}) => {
    bump(stats.token_errors, error);
    sendJson(res, status, { error, error_description: description }, extra);
  };
  if (!decodeBasic(request.headers)) {
    fail(400, 'invalid_request', 'client credentials in the Authorization header are not properly encoded');
    return;
  }
  const client = clients.get(body.client_id);
  const server = client && client.secret === undefined && !request.headers.authorization
    ? publicOauth : oauth;
  // Applied first, the answer held back: a slow answer, not a slow server.
  const delayMs = nextTokenDelayMs;
  nextTokenDelayMs = 0;
  try {
    await server.token(request, response);
  } catch (err) {
    if (!(err instanceof OAuthError)) throw err;
    console.error(`[oauth2-server] token ${grantType}: ${err.name}: ${err.message}`);
    bump(stats.token_errors, err.name);
  }
  if (delayMs > 0) await new Promise((resolve) => { setTimeout(resolve, delayMs); });
  send(res, response);
}

async function delayToken(req, res) {
  const raw = (await readBody(req)).trim();
  const ms = Number(raw.startsWith('{') ? JSON.parse(raw).ms : new URLSearchParams(raw).get('ms'));
  if (!Number.isInteger(ms) || ms < 0) {
    sendJson(res, 400, { error: 'ms must be a non-negative integer' });
    return;
  }
  nextTokenDelayMs = ms;
  sendJson(res, 200, { ms });
}

async function resource(req, res, url) {
  stats.resource_calls += 1;
  const request = new Request({
    headers: { ...req.headers }, method: req.method, query: {}, body: {},
  });
  const response = new Response({ headers: {} });
  const required = url.searchParams.get('require_scope');
  const options = required
    ? { scope: [required], addAcceptedScopesHeader: false, addAuthorizedScopesHeader: false }
    : {};
  try {
    const token = await oauth.authenticate(request, response, options);
    stats.resource_ok += 1;
    sendJson(res, 200, {
      ok: true, sub: token.user.id, client_id: token.client.id, scope: token.scope.join(' '),
    });
  } catch (err) {
    if (!(err instanceof OAuthError)) throw err;
    if (err.code === 401) stats.resource_401 += 1;
    if (err.code === 403) stats.resource_403 += 1;
    const body = err.name === 'unauthorized_request'
      ? { error: 'missing bearer token' } : { error: err.name, error_description: err.message };
    sendJson(res, err.code, body, response.headers);
  }
}

const { server, port } = await listenLoopback();
const issuer = `http://127.0.0.1:${port}`;

server.on('request', (req, res) => {
  const url = new URL(req.url, issuer);
  const route = `${req.method} ${url.pathname}`;
  let handled;
  if (route === 'POST /token') {
    handled = token(req, res, url);
  } else if (route === 'GET /api/resource') {
    handled = resource(req, res, url);
  } else if (route === 'GET /test/stats') {
    handled = Promise.resolve(sendJson(res, 200, stats));
  } else if (route === 'POST /test/expire-access-tokens') {
    // Forgets every access token issued so far, as a provider restart or a revocation on its
    // side would: the API answers 401 `invalid_token` to them. Refresh tokens stay valid.
    const forgotten = accessTokens.size;
    accessTokens.clear();
    handled = Promise.resolve(sendJson(res, 200, { forgotten }));
  } else if (route === 'POST /test/delay-token') {
    handled = delayToken(req, res);
  } else if (route === 'POST /test/stats/reset') {
    Object.assign(stats, freshStats());
    handled = Promise.resolve(sendJson(res, 200, stats));
  } else {
    handled = Promise.resolve(sendJson(res, 404, { error: 'not_found' }));
  }
  handled.catch((err) => {
    console.error(`[oauth2-server] ${route}: ${err.stack ?? err}`);
    if (!res.headersSent) sendJson(res, 500, { error: 'server_error' });
    else res.destroy();
  });
});

announceReady(issuer, port);
