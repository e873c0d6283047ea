// The real OpenID provider (panva/oidc-provider 9.x) for modelgate's identity
// end-to-end tests, on 127.0.0.1 over plain http.
//
//   node tests/oidc/server.mjs PORT KEYS_FILE [LOGIN]
//
// KEYS_FILE holds the signing keys as a private JWKS ({"keys": [...]}, an
// RSA key with alg RS256 and an EC P-256 key with alg ES256); the tests write
// it, so they can rotate keys by restarting with another file. Module
// resolution: MODELGATE_OIDC_MODULES names the node_modules folder that
// scripts/install-deps.sh fills (default ~/.cache/modelgate/oidc/node_modules).
//
// Clients (client_credentials only):
//   modelgate-test / test-secret      gets tokens
//   modelgate      / introspect-secret   introspects (RFC 7662)
// Browser sign-in (authorization code + PKCE, refresh tokens, RP-initiated
// logout back to "/" of each redirect URI's origin):
//   modelgate-web  / web-secret        redirect URIs from OIDC_REDIRECT_URIS
//                                      (comma-separated; the tests know the
//                                      gateway's address before it starts)
// Interactive login: a form with fields `login` and `password` for the test
// users below. LOGIN picks where it sits: `interaction` (default,
// /interaction/UID) or `dex` — Dex's static-password page,
// /auth/local/login?uid=UID, which seed 003's get_istio_auth_session() finds.
// Resource indicators (the `resource` parameter) choose the token:
//   urn:modelgate:rs256    JWT, RS256, aud "models", 300 s
//   urn:modelgate:es256    JWT, ES256, aud "models", 300 s
//   urn:modelgate:short    JWT, RS256, aud "models", 1 s
//   urn:modelgate:other    JWT, RS256, aud "other-api", 300 s
//   urn:modelgate:opaque   opaque, aud "models", 300 s (for introspection)

import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [port, keysFile, login = 'interaction'] = process.argv.slice(2);
if (!port || !keysFile) {
  console.error('usage: server.mjs PORT KEYS_FILE');
  process.exit(2);
}
const modules = process.env.MODELGATE_OIDC_MODULES
  || join(process.env.MODELGATE_CACHE || join(homedir(), '.cache', 'modelgate'), 'oidc', 'node_modules');
const { default: Provider, errors } = await import(pathToFileURL(join(modules, 'oidc-provider', 'lib', 'index.js')).href);

// PyJWT writes private keys with key_ops ["sign"]; the provider also verifies
// with them (id_token_hint at end_session), so the restriction is dropped.
const jwks = { keys: JSON.parse(readFileSync(keysFile, 'utf8')).keys.map(({ key_ops: _, ...k }) => k) };
const issuer = `http://127.0.0.1:${port}`;

const jwt = (alg, audience, ttl) => ({
  scope: 'infer',
  audience,
  accessTokenTTL: ttl,
  accessTokenFormat: 'jwt',
  jwt: { sign: { alg } },
});
const resources = {
  'urn:modelgate:rs256': jwt('RS256', 'models', 300),
  'urn:modelgate:es256': jwt('ES256', 'models', 300),
  'urn:modelgate:short': jwt('RS256', 'models', 1),
  'urn:modelgate:other': jwt('RS256', 'other-api', 300),
  'urn:modelgate:opaque': { scope: 'infer', audience: 'models', accessTokenTTL: 300, accessTokenFormat: 'opaque' },
};

// Test users (seed 003's Dex static password, and an admin).
const users = {
  'user@example.com': { password: '12341234', name: 'Example User', groups: ['kubeflow-users'] },
  'admin@example.com': { password: 'admin-password', name: 'Example Admin', groups: ['modelgate-admins'] },
};
const redirectUris = (process.env.OIDC_REDIRECT_URIS || '').split(',').filter(Boolean);
// RP-initiated logout may return the browser to the landing page ("/") of
// each gateway origin that has a sign-in redirect URI.
const postLogoutUris = [...new Set(redirectUris.map((u) => `${new URL(u).origin}/`))];
const loginPath = login === 'dex' ? '/auth/local/login' : '/interaction/';

const provider = new Provider(issuer, {
  jwks,
  clients: [
    { client_id: 'modelgate-test', client_secret: 'test-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [] },
    { client_id: 'modelgate', client_secret: 'introspect-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [] },
    {
      client_id: 'modelgate-web', client_secret: 'web-secret', grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'], redirect_uris: redirectUris.length ? redirectUris : ['http://127.0.0.1/unused'],
      post_logout_redirect_uris: postLogoutUris,
    },
  ],
  scopes: ['infer', 'openid', 'offline_access', 'email', 'profile', 'groups'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'], groups: ['groups'] },
  conformIdTokenClaims: false,
  cookies: { keys: ['modelgate-test-cookie-key'] },
  findAccount: async (ctx, id) => users[id] && {
    accountId: id,
    claims: async () => ({ sub: id, email: id, email_verified: true, name: users[id].name, groups: users[id].groups }),
  },
  interactions: {
    url: (ctx, interaction) => (login === 'dex' ? `/auth/local/login?uid=${interaction.uid}` : `/interaction/${interaction.uid}`),
  },
  // OIDC_ID_TOKEN_TTL (seconds, default 3600): short ID tokens make the
  // gateway refresh sessions.
  ttl: { IdToken: Number(process.env.OIDC_ID_TOKEN_TTL || 3600) },
  issueRefreshToken: async (ctx, client, code) => client.grantTypeAllowed('refresh_token'),
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => {
        const info = resources[resource];
        if (!info) throw new errors.InvalidTarget();
        return info;
      },
    },
  },
});

// The login form (GET) and its submission (POST), at loginPath.
const page = (action, error) => `<!doctype html><html><body><h1>Log in</h1>${error ? `<p>${error}</p>` : ''}
<form method="post" action="${action}"><label>Email <input name="login"></label>
<label>Password <input name="password" type="password"></label><button type="submit">Login</button></form></body></html>`;

const readForm = (req) => new Promise((resolve, reject) => {
  let body = '';
  req.on('data', (c) => { body += c; if (body.length > 10000) reject(new Error('too large')); });
  req.on('end', () => resolve(new URLSearchParams(body)));
  req.on('error', reject);
});

provider.use(async (ctx, next) => {
  if (!ctx.path.startsWith(loginPath) || !['GET', 'POST'].includes(ctx.method)) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (ctx.method === 'GET') {
    ctx.type = 'html';
    ctx.body = page(ctx.originalUrl, '');
    return undefined;
  }
  const form = await readForm(ctx.req);
  const user = users[form.get('login')];
  if (!user || user.password !== form.get('password')) {
    ctx.type = 'html';
    ctx.body = page(ctx.originalUrl, 'Invalid email or password.');
    return undefined;
  }
  const accountId = form.get('login');
  const grant = new provider.Grant({ accountId, clientId: details.params.client_id });
  grant.addOIDCScope(details.params.scope);
  const grantId = await grant.save();
  const returnTo = await provider.interactionResult(ctx.req, ctx.res,
    { login: { accountId }, consent: { grantId } }, { mergeWithLastSubmission: false });
  ctx.status = 303;
  ctx.redirect(returnTo);
  return undefined;
});

const server = provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
