// The real OpenID provider (panva/oidc-provider 9.x) for modelgate's identity
// end-to-end tests, on 127.0.0.1 over plain http.
//
//   node tests/oidc/server.mjs PORT KEYS_FILE
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

const [port, keysFile] = process.argv.slice(2);
if (!port || !keysFile) {
  console.error('usage: server.mjs PORT KEYS_FILE');
  process.exit(2);
}
const modules = process.env.MODELGATE_OIDC_MODULES
  || join(process.env.MODELGATE_CACHE || join(homedir(), '.cache', 'modelgate'), 'oidc', 'node_modules');
const { default: Provider, errors } = await import(pathToFileURL(join(modules, 'oidc-provider', 'lib', 'index.js')).href);

const jwks = JSON.parse(readFileSync(keysFile, 'utf8'));
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

const provider = new Provider(issuer, {
  jwks,
  clients: [
    { client_id: 'modelgate-test', client_secret: 'test-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [] },
    { client_id: 'modelgate', client_secret: 'introspect-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [] },
  ],
  scopes: ['infer'],
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

const server = provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
