// oidc-provider on 127.0.0.1, set up for tokenflow's integration tests.
//
//   node oidc.js '{"accessTokenTtl":2,"refreshTokenTtl":3600}'
//
// Prints one JSON line `{"ready":true,"issuer":...,"port":...}` on stdout when listening and
// exits when stdin closes. See README.md next to this file for the options and routes.

// First, so that its stdout guard is in place before any library loads.
import {
  CLIENTS, REDIRECT_URI, SCOPES, USERS,
  announceReady, bump, listenLoopback, newStats, parseOptions, readBody, sendJson,
} from './common.js';
import Provider, { errors } from 'oidc-provider';

const opts = parseOptions({
  accessTokenTtl: 3600, // AccessToken (password, refresh, code and device grants), seconds
  clientCredentialsTtl: null, // ClientCredentials tokens; defaults to accessTokenTtl
  refreshTokenTtl: 86400,
  authorizationCodeTtl: 60,
  deviceCodeTtl: 600,
});
const clientCredentialsTtl = opts.clientCredentialsTtl ?? opts.accessTokenTtl;
// A grant outlives every token issued under it.
const grantTtl = Math.max(opts.refreshTokenTtl, opts.accessTokenTtl, clientCredentialsTtl) + 3600;

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const CONFIDENTIAL_GRANTS = [
  'password', 'client_credentials', 'refresh_token', 'authorization_code', DEVICE_GRANT,
];

function confidential({ id, secret, method }) {
  return {
    client_id: id,
    client_secret: secret,
    token_endpoint_auth_method: method,
    grant_types: CONFIDENTIAL_GRANTS,
    response_types: ['code'],
    redirect_uris: [REDIRECT_URI],
  };
}

const clients = [
  confidential(CLIENTS.basic),
  confidential(CLIENTS.post),
  confidential(CLIENTS.special),
  {
    client_id: CLIENTS.pkce.id,
    token_endpoint_auth_method: 'none',
    application_type: 'native',
    grant_types: ['password', 'refresh_token', 'authorization_code', DEVICE_GRANT],
    response_types: ['code'],
    redirect_uris: [REDIRECT_URI],
  },
];

async function issueRefreshToken(ctx, client, code) {
  return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
}

const stats = newStats();

const { server, port } = await listenLoopback();
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients,
  scopes: SCOPES,
  claims: { openid: ['sub'] },
  async findAccount(ctx, id) {
    if (!USERS.has(id)) return undefined;
    return { accountId: id, async claims() { return { sub: id }; } };
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    deviceFlow: { enabled: true },
  },
  rotateRefreshToken: true,
  issueRefreshToken,
  clockTolerance: 0,
  pkce: { methods: ['S256'], required: () => false },
  ttl: {
    AccessToken: opts.accessTokenTtl,
    ClientCredentials: clientCredentialsTtl,
    RefreshToken: opts.refreshTokenTtl,
    AuthorizationCode: opts.authorizationCodeTtl,
    DeviceCode: opts.deviceCodeTtl,
    Grant: grantTtl,
    Interaction: 600,
    Session: grantTtl,
    IdToken: 3600,
  },
  interactions: {
    url(ctx, interaction) {
      return `/interaction/${interaction.uid}`;
    },
  },
  // Errors at the browser-facing endpoints come back as JSON rather than an HTML page.
  async renderError(ctx, out) {
    ctx.type = 'json';
    ctx.body = out;
  },
});

// --- the password grant (RFC 6749 §4.3), issued through the provider's own models so that
// refresh, rotation, revocation and introspection treat its tokens like any other.
async function passwordGrant(ctx, next) {
  const { username, password, scope } = ctx.oidc.params;
  if (!username) throw new errors.InvalidRequest("missing required parameter 'username'");
  if (!password) throw new errors.InvalidRequest("missing required parameter 'password'");
  if (USERS.get(username) !== password) {
    throw new errors.InvalidGrant('invalid resource owner credentials');
  }

  const requested = scope ? [...new Set(scope.split(' ').filter(Boolean))] : [];
  const unknown = requested.filter((s) => !SCOPES.includes(s));
  if (unknown.length !== 0) {
    throw new errors.InvalidScope('requested scope is not supported', unknown.join(' '));
  }
  const scopeString = requested.join(' ') || undefined;

  const { client } = ctx.oidc;
  const { Grant, AccessToken, RefreshToken, IdToken } = ctx.oidc.provider;
  const account = await ctx.oidc.provider.Account.findAccount(ctx, username);

  const grant = new Grant({ accountId: account.accountId, clientId: client.clientId });
  if (scopeString) grant.addOIDCScope(scopeString);
  const grantId = await grant.save();
  ctx.oidc.entity('Grant', grant);
  ctx.oidc.entity('Account', account);

  const at = new AccessToken({
    accountId: account.accountId, client, grantId, gty: 'password', scope: scopeString,
  });
  ctx.oidc.entity('AccessToken', at);
  const accessToken = await at.save();

  let refreshToken;
  if (await issueRefreshToken(ctx, client, { scopes: new Set(requested) })) {
    const rt = new RefreshToken({
      accountId: account.accountId,
      authTime: Math.floor(Date.now() / 1000),
      client,
      grantId,
      gty: 'password',
      rotations: 0,
      scope: scopeString,
    });
    ctx.oidc.entity('RefreshToken', rt);
    refreshToken = await rt.save();
  }

  let idToken;
  if (requested.includes('openid')) {
    const token = new IdToken({ ...await account.claims() }, { ctx });
    token.scope = 'openid';
    token.set('at_hash', accessToken);
    idToken = await token.issue({ use: 'idtoken' });
  }

  ctx.body = {
    access_token: accessToken,
    expires_in: at.expiration,
    id_token: idToken,
    refresh_token: refreshToken,
    scope: scopeString,
    token_type: at.tokenType,
  };
  await next();
}
provider.registerGrantType('password', passwordGrant, ['username', 'password', 'scope']);

// --- counters, kept by a middleware that sees every provider request after it is handled.
provider.use(async (ctx, next) => {
  await next();
  if (ctx.method !== 'POST') return;
  if (ctx.path === '/token') {
    bump(stats.token_requests, ctx.oidc?.params?.grant_type ?? '(none)');
    if (ctx.status >= 400 && ctx.body && typeof ctx.body.error === 'string') {
      bump(stats.token_errors, ctx.body.error);
    }
  } else if (ctx.path === '/token/revocation') {
    stats.revocations += 1;
  } else if (ctx.path === '/token/introspection') {
    stats.introspections += 1;
  }
});

for (const event of ['server_error', 'grant.error', 'introspection.error', 'revocation.error']) {
  provider.on(event, (ctx, err) => console.error(`[oidc] ${event}: ${err?.name}: ${err?.error_description ?? err?.message}${err?.error_detail ? ` (${err.error_detail})` : ""}`));
}

// --- routes of our own, in front of the provider.

// Auto-approves every interaction: login as `joe`, then consent to whatever was asked.
async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params } = details;
  if (prompt.name === 'login') {
    await provider.interactionFinished(req, res, { login: { accountId: 'joe' } }, {
      mergeWithLastSubmission: false,
    });
    return;
  }
  if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    if (missing.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, {
      mergeWithLastSubmission: true,
    });
    return;
  }
  sendJson(res, 500, { error: 'server_error', error_description: `unexpected prompt ${prompt.name}` });
}

function normalizeUserCode(input) {
  return input.toUpperCase().replace(/\W/g, '');
}

// Approves or denies a pending device authorization (RFC 8628) by its user code, as the user
// would on the verification page.
async function deviceDecision(req, res, approve) {
  const body = new URLSearchParams(await readBody(req));
  const userCode = body.get('user_code');
  if (!userCode) {
    sendJson(res, 400, { error: 'invalid_request', error_description: 'missing user_code' });
    return;
  }
  const code = await provider.DeviceCode.findByUserCode(normalizeUserCode(userCode), {
    ignoreExpiration: true,
  });
  if (!code) {
    sendJson(res, 404, { error: 'not_found' });
    return;
  }
  if (code.isExpired || code.error || code.accountId) {
    sendJson(res, 409, { error: 'already_decided_or_expired' });
    return;
  }
  if (approve) {
    const accountId = body.get('account') ?? 'joe';
    if (!USERS.has(accountId)) {
      sendJson(res, 400, { error: 'invalid_request', error_description: 'unknown account' });
      return;
    }
    // The scope asked for at the device authorization endpoint, as consent would grant it.
    const scope = [...new Set((code.params?.scope ?? '').split(' '))]
      .filter((s) => SCOPES.includes(s)).join(' ');
    const grant = new provider.Grant({ accountId, clientId: code.clientId });
    if (scope) grant.addOIDCScope(scope);
    Object.assign(code, {
      accountId,
      authTime: Math.floor(Date.now() / 1000),
      grantId: await grant.save(),
      scope: scope || undefined,
    });
  } else {
    Object.assign(code, {
      error: 'access_denied',
      errorDescription: 'End-User denied the authorization request',
    });
  }
  await code.save();
  sendJson(res, 200, { ok: true, approved: approve });
}

// A protected resource: `Authorization: Bearer <token>` against the provider's token store.
// `?require_scope=x` answers 403 insufficient_scope when the token lacks scope x.
async function resource(req, res, url) {
  stats.resource_calls += 1;
  const header = req.headers.authorization ?? '';
  const match = /^bearer +([^ ]+) *$/i.exec(header);
  if (!match) {
    stats.resource_401 += 1;
    sendJson(res, 401, { error: 'missing bearer token' }, { 'www-authenticate': 'Bearer' });
    return;
  }
  const value = match[1];
  const token = (await provider.AccessToken.find(value))
    ?? (await provider.ClientCredentials.find(value));
  if (!token) {
    stats.resource_401 += 1;
    sendJson(res, 401, { error: 'invalid_token' }, {
      'www-authenticate': 'Bearer error="invalid_token", error_description="unknown, expired or revoked token"',
    });
    return;
  }
  const required = url.searchParams.get('require_scope');
  if (required && !(token.scope ?? '').split(' ').includes(required)) {
    stats.resource_403 += 1;
    sendJson(res, 403, { error: 'insufficient_scope' }, {
      'www-authenticate': `Bearer error="insufficient_scope", scope="${required}"`,
    });
    return;
  }
  stats.resource_ok += 1;
  sendJson(res, 200, {
    ok: true, sub: token.accountId ?? token.clientId, client_id: token.clientId, scope: token.scope ?? '',
  });
}

const callback = provider.callback();

server.on('request', (req, res) => {
  const url = new URL(req.url, issuer);
  const route = `${req.method} ${url.pathname}`;
  let handled;
  if (route === 'GET /api/resource') {
    handled = resource(req, res, url);
  } else if (route === 'GET /test/stats') {
    handled = Promise.resolve(sendJson(res, 200, stats));
  } else if (route === 'POST /test/stats/reset') {
    Object.assign(stats, newStats());
    handled = Promise.resolve(sendJson(res, 200, stats));
  } else if (route === 'POST /test/device/approve') {
    handled = deviceDecision(req, res, true);
  } else if (route === 'POST /test/device/deny') {
    handled = deviceDecision(req, res, false);
  } else if (req.method === 'GET' && url.pathname.startsWith('/interaction/')) {
    handled = interaction(req, res);
  } else {
    callback(req, res);
    return;
  }
  handled.catch((err) => {
    console.error(`[oidc] ${route}: ${err.stack ?? err}`);
    if (!res.headersSent) sendJson(res, 500, { error: 'server_error' });
    else res.destroy();
  });
});

announceReady(issuer, port);
