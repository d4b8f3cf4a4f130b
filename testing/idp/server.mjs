// A real OAuth 2.1 authorization server for mcp-auth's integration tests.
//
// Runs the OpenID Certified `oidc-provider` on 127.0.0.1, configured the way an MCP deployment
// uses an IdP: open Dynamic Client Registration, RFC 8707 resource indicators with per-resource
// token format / signing algorithm / lifetime, client_credentials, authorization code + PKCE with
// a headless login, refresh tokens, RFC 7662 introspection and RFC 7009 revocation, and DPoP
// (RFC 9449): a token request carrying a `DPoP` proof gets a token bound to the proof's key
// (`cnf.jkt` in JWT access tokens and in introspection responses).
//
// Usage: node server.mjs [PORT]        (PORT or env IDP_PORT; 0 or absent = a free port)
//
// Environment:
//   IDP_RESOURCES  JSON array of resources:
//                  [{"url": "...", "scopes": ["a", "b"], "format": "jwt"|"opaque",
//                    "alg": "RS256"|"ES256"|"EdDSA", "ttl": 300}]
//   IDP_M2M_CLIENT_ID / IDP_M2M_CLIENT_SECRET   confidential client_credentials client
//   IDP_RS_CLIENT_ID / IDP_RS_CLIENT_SECRET     confidential resource-server client (introspection)
//
// On stdout, once listening, exactly one line: READY {"port":N,"issuer":"http://127.0.0.1:N"}.
// Test-only route: GET /test/stats -> {"introspection":N,"revocation":N,"token":N,"exchange":N}.
// Token exchange (RFC 8693) and Entra-style on-behalf-of (jwt-bearer grant with
// requested_token_use=on_behalf_of) for the resource-server client: the subject token must be
// an unexpired access token of this IdP; the target (audience/resource, or for on-behalf-of the
// `<resource>/<scope>` or `<resource>/.default` scopes) must be a configured resource, and the
// scopes among its own. The issued token keeps the subject's `sub`, carries `act.sub` = the
// requesting client, and follows the target's format, algorithm and lifetime.
// Headless login: GET /interaction/:uid logs in the account named by `login_hint` (default
// "alice") and grants the requested scopes; login_hint "refuse" ends in access_denied.

import { createServer } from 'node:http';
import { createPublicKey, generateKeyPairSync, randomBytes, verify as verifySignature } from 'node:crypto';
import Provider, { errors } from 'oidc-provider';

const REFUSE_HINT = 'refuse';
const DEFAULT_ACCOUNT = 'alice';
const ALGS = new Set(['RS256', 'ES256', 'EdDSA']);
const FORMATS = new Set(['jwt', 'opaque']);

function fail(message) {
  process.stderr.write(`test idp: ${message}\n`);
  process.exit(2);
}

function parseResources(raw) {
  let list;
  try {
    list = JSON.parse(raw || '[]');
  } catch (e) {
    fail(`IDP_RESOURCES is not JSON: ${e.message}`);
  }
  if (!Array.isArray(list)) fail('IDP_RESOURCES must be a JSON array');
  return list.map((r, i) => {
    if (typeof r?.url !== 'string' || !r.url) fail(`IDP_RESOURCES[${i}].url missing`);
    const scopes = Array.isArray(r.scopes) ? r.scopes.map(String) : [];
    const format = r.format ?? 'jwt';
    const alg = r.alg ?? 'RS256';
    const ttl = Number(r.ttl ?? 300);
    if (!FORMATS.has(format)) fail(`IDP_RESOURCES[${i}].format must be jwt or opaque`);
    if (!ALGS.has(alg)) fail(`IDP_RESOURCES[${i}].alg must be one of ${[...ALGS].join(', ')}`);
    if (!Number.isInteger(ttl) || ttl <= 0) fail(`IDP_RESOURCES[${i}].ttl must be a positive integer`);
    return { url: r.url, scopes, format, alg, ttl };
  });
}

// Fresh keys at every start; the random kid suffix makes a restarted IdP's keys distinguishable.
function freshJwks() {
  const suffix = randomBytes(6).toString('hex');
  const jwk = (keyPair, alg, name) => ({
    ...keyPair.privateKey.export({ format: 'jwk' }),
    kid: `${name}-${suffix}`,
    alg,
    use: 'sig',
  });
  return {
    keys: [
      jwk(generateKeyPairSync('rsa', { modulusLength: 2048 }), 'RS256', 'rsa'),
      jwk(generateKeyPairSync('ec', { namedCurve: 'P-256' }), 'ES256', 'p256'),
      jwk(generateKeyPairSync('ed25519'), 'EdDSA', 'ed25519'),
    ],
  };
}

const resources = parseResources(process.env.IDP_RESOURCES);
const jwks = freshJwks();
process.stderr.write('idp: keys\n');
// Public halves of the signing keys, to check subject tokens of our own JWT format.
const publicKeys = new Map(jwks.keys.map((k) => [k.kid, { alg: k.alg, key: createPublicKey({ key: k, format: 'jwk' }) }]));
const byUrl = new Map(resources.map((r) => [r.url, r]));
const resourceScopes = [...new Set(resources.flatMap((r) => r.scopes))];

const m2m = {
  id: process.env.IDP_M2M_CLIENT_ID || 'm2m-client',
  secret: process.env.IDP_M2M_CLIENT_SECRET || 'm2m-client-secret-for-tests-only',
};
const rs = {
  id: process.env.IDP_RS_CLIENT_ID || 'resource-server',
  secret: process.env.IDP_RS_CLIENT_SECRET || 'resource-server-secret-for-tests-only',
};

const stats = { introspection: 0, revocation: 0, token: 0, exchange: 0 };

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

const portArg = process.argv[2] ?? process.env.IDP_PORT ?? '0';
const wantedPort = Number(portArg);
if (!Number.isInteger(wantedPort) || wantedPort < 0 || wantedPort > 65535) fail(`bad port ${portArg}`);

let handler = (_req, res) => {
  res.statusCode = 503;
  res.end();
};
const server = createServer((req, res) => handler(req, res));
server.on('error', (e) => fail(`listen failed: ${e.code ?? ''} ${e.message}`));
await new Promise((resolve) => server.listen(wantedPort, '127.0.0.1', resolve));
const { port } = server.address();
process.stderr.write(`idp: listening on ${port}\n`);
const issuer = `http://127.0.0.1:${port}`;

const configuration = {
  clients: [
    {
      client_id: m2m.id,
      client_secret: m2m.secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      client_id: rs.id,
      client_secret: rs.secret,
      grant_types: [TOKEN_EXCHANGE, JWT_BEARER],
      response_types: [],
      redirect_uris: [],
      // Basic or post: the token-exchange tests use both.
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  // Trap: DCR requests carrying `scope` are refused unless every value is listed here.
  scopes: ['openid', 'offline_access', 'profile', 'email', ...resourceScopes],
  claims: { openid: ['sub'], profile: ['name'], email: ['email'] },
  jwks,
  // RFC 8693 §4.1: an exchanged token names the party acting for the user.
  extraTokenClaims: async (_ctx, token) =>
    token.gty === 'token_exchange' ? { act: { sub: token.clientId } } : undefined,
  cookies: { keys: [randomBytes(32).toString('hex')] },
  findAccount: async (_ctx, id) => ({
    accountId: id,
    claims: async () => ({ sub: id, name: id, email: `${id}@example.test` }),
  }),
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  pkce: { required: () => true },
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: {
    AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? 300,
    ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? 300,
    AuthorizationCode: 60,
    Grant: 3600,
    Interaction: 600,
    Session: 3600,
    RefreshToken: 86400,
    IdToken: 300,
  },
  enabledJWA: {
    // DPoP proof algorithms the token endpoint accepts (the resource server has its own list).
    dPoPSigningAlgValues: ['ES256', 'ES384', 'EdDSA', 'PS256', 'RS256'],
  },
  features: {
    dPoP: { enabled: true },
    devInteractions: { enabled: false },
    registration: { enabled: true },
    registrationManagement: { enabled: true },
    clientCredentials: { enabled: true },
    revocation: {
      enabled: true,
      // The resource-server client may revoke any token (tests revoke tokens issued to others).
      allowedPolicy: async (_ctx, client, token) =>
        client.clientId === rs.id || token.clientId === client.clientId,
    },
    introspection: {
      enabled: true,
      // Only the resource-server client, or a client asking about its own token.
      allowedPolicy: async (_ctx, client, token) =>
        client.clientId === rs.id || token.clientId === client.clientId,
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf ?? resources[0]?.url,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, indicator) => {
        const r = byUrl.get(indicator);
        if (!r) throw new errors.InvalidTarget();
        return {
          scope: r.scopes.join(' '),
          audience: r.url,
          accessTokenTTL: r.ttl,
          accessTokenFormat: r.format,
          ...(r.format === 'jwt' ? { jwt: { sign: { alg: r.alg } } } : {}),
        };
      },
    },
  },
};

const provider = new Provider(issuer, configuration);
const callback = provider.callback();

// The subject token: a JWT access token signed by one of our keys, or an opaque one we issued;
// unexpired either way. Returns its subject and audience, or undefined.
async function subjectOf(token) {
  if (typeof token !== 'string' || !token) return undefined;
  const now = Math.floor(Date.now() / 1000);
  const parts = token.split('.');
  if (parts.length === 3) {
    let header;
    let payload;
    try {
      header = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
      payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
    } catch {
      return undefined;
    }
    const k = publicKeys.get(header.kid);
    if (!k || k.alg !== header.alg) return undefined;
    const data = Buffer.from(`${parts[0]}.${parts[1]}`);
    const sig = Buffer.from(parts[2], 'base64url');
    const ok = header.alg === 'EdDSA'
      ? verifySignature(null, data, k.key, sig)
      : verifySignature('sha256', data, header.alg === 'ES256' ? { key: k.key, dsaEncoding: 'ieee-p1363' } : k.key, sig);
    if (!ok || payload.iss !== issuer || typeof payload.exp !== 'number' || payload.exp <= now) return undefined;
    return { sub: payload.sub, aud: payload.aud };
  }
  const stored = await provider.AccessToken.find(token);
  if (!stored || stored.isExpired) return undefined;
  return { sub: stored.accountId ?? stored.clientId, aud: stored.aud };
}

async function issueFor(ctx, subject, target, scopes) {
  const r = byUrl.get(target);
  if (!r) throw new errors.InvalidTarget('unknown target');
  const granted = scopes.length ? scopes : r.scopes;
  if (granted.some((s) => !r.scopes.includes(s))) throw new errors.InvalidScope('scope not available at the target');
  const token = new provider.AccessToken({
    accountId: subject.sub,
    client: ctx.oidc.client,
    scope: granted.join(' ') || undefined,
    gty: 'token_exchange',
  });
  token.resourceServer = new provider.ResourceServer(r.url, {
    scope: r.scopes.join(' '),
    audience: r.url,
    accessTokenTTL: r.ttl,
    accessTokenFormat: r.format,
    ...(r.format === 'jwt' ? { jwt: { sign: { alg: r.alg } } } : {}),
  });
  ctx.oidc.entity('AccessToken', token);
  const value = await token.save();
  stats.exchange += 1;
  ctx.body = {
    access_token: value,
    issued_token_type: ACCESS_TOKEN_TYPE,
    token_type: 'Bearer',
    expires_in: token.expiration,
    scope: token.scope,
  };
}

provider.registerGrantType(
  TOKEN_EXCHANGE,
  async (ctx) => {
    const p = ctx.oidc.params;
    if (p.subject_token_type !== ACCESS_TOKEN_TYPE) throw new errors.InvalidRequest('unsupported subject_token_type');
    if (p.requested_token_type && p.requested_token_type !== ACCESS_TOKEN_TYPE) {
      throw new errors.InvalidRequest('unsupported requested_token_type');
    }
    if (p.audience && p.resource && p.audience !== p.resource) throw new errors.InvalidTarget('audience and resource differ');
    const subject = await subjectOf(p.subject_token);
    if (!subject) throw new errors.InvalidGrant('subject token invalid or expired');
    await issueFor(ctx, subject, p.resource ?? p.audience, p.scope ? p.scope.split(' ') : []);
  },
  ['subject_token', 'subject_token_type', 'requested_token_type', 'audience', 'resource', 'scope', 'actor_token', 'actor_token_type'],
);

// Entra's on-behalf-of flow: the target is named by its scopes, `<resource>/<scope>` or
// `<resource>/.default`.
provider.registerGrantType(
  JWT_BEARER,
  async (ctx) => {
    const p = ctx.oidc.params;
    if (p.requested_token_use !== 'on_behalf_of') throw new errors.InvalidRequest('requested_token_use must be on_behalf_of');
    const subject = await subjectOf(p.assertion);
    if (!subject) throw new errors.InvalidGrant('assertion invalid or expired');
    const requested = (p.scope ?? '').split(' ').filter(Boolean);
    const r = resources.find((res) => requested.length && requested.every((s) => s.startsWith(`${res.url}/`)));
    if (!r) throw new errors.InvalidScope('scopes name no single configured resource');
    const bare = requested.map((s) => s.slice(r.url.length + 1));
    await issueFor(ctx, subject, r.url, bare.includes('.default') ? [] : bare);
  },
  ['assertion', 'requested_token_use', 'scope'],
);

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details;
  const hint = typeof params.login_hint === 'string' && params.login_hint ? params.login_hint : DEFAULT_ACCOUNT;
  if (hint === REFUSE_HINT) {
    await provider.interactionFinished(
      req,
      res,
      { error: 'access_denied', error_description: 'End-User refused the authorization' },
      { mergeWithLastSubmission: false },
    );
    return;
  }
  if (prompt.name === 'login') {
    await provider.interactionFinished(req, res, { login: { accountId: hint } }, { mergeWithLastSubmission: false });
    return;
  }
  if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = prompt.details;
    if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
    if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }
  res.statusCode = 400;
  res.setHeader('content-type', 'text/plain');
  res.end(`unsupported prompt ${prompt.name}`);
}

// Trap: an authorization request without scope ends in access_denied. Like many hosted IdPs,
// grant the resource's scopes when the client asks for none.
function withDefaultScope(url) {
  if (url.searchParams.get('scope')) return false;
  const resource = url.searchParams.get('resource') ?? resources[0]?.url;
  const r = byUrl.get(resource);
  if (!r || r.scopes.length === 0) return false;
  url.searchParams.set('scope', r.scopes.join(' '));
  return true;
}

handler = (req, res) => {
  const url = new URL(req.url, issuer);
  const path = url.pathname;
  if (req.method === 'GET' && path === '/test/stats') {
    res.setHeader('content-type', 'application/json');
    res.setHeader('cache-control', 'no-store');
    res.end(JSON.stringify(stats));
    return;
  }
  if (req.method === 'GET' && path.startsWith('/interaction/')) {
    interaction(req, res).catch((e) => {
      res.statusCode = e.statusCode ?? 500;
      res.setHeader('content-type', 'text/plain');
      res.end(`interaction failed: ${e.message}`);
    });
    return;
  }
  if (path === '/token/introspection') stats.introspection += 1;
  else if (path === '/token/revocation') stats.revocation += 1;
  else if (path === '/token') stats.token += 1;
  if (req.method === 'GET' && path === '/auth' && withDefaultScope(url)) {
    req.url = url.pathname + url.search;
  }
  callback(req, res);
};

// Silence the "Unsupported runtime" / development-config warnings on stdout-consumers: they go
// to stderr already; the only stdout line is READY.
process.stdout.write(`READY ${JSON.stringify({ port, issuer })}\n`);
process.stderr.write('idp: ready\n');

const shutdown = () => server.close(() => process.exit(0));
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
