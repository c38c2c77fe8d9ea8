// node-oidc-provider configured like Tessera's bench setup, so bench/run can
// compare the two: one confidential client with the client credentials
// grant, one resource server (RFC 8707) whose access tokens are ES256
// `at+jwt` JWTs, encrypted with ECDH-ES+A256KW / A256GCM to the resource
// server's P-256 public key unless PEER_ENCRYPT=0.
//
// Environment: PEER_PORT, PEER_CLIENT_ID, PEER_CLIENT_SECRET,
// PEER_RESOURCE_JWK (file holding the resource server's public JWK),
// PEER_ENCRYPT (1 or 0). Prints "listening" on standard output when ready.
//
// The provider keeps its default in-memory adapter. JWT access tokens are
// not stored by oidc-provider 9 (only opaque ones are), and the client is
// static, so the bench never touches the adapter.

import { generateKeyPairSync, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

const RESOURCE = 'https://bench.test/';
const SCOPE = 'bench.read';
const ACCESS_TOKEN_TTL_SECONDS = 600;

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`missing environment variable ${name}`);
    process.exit(2);
  }
  return value;
}

const port = Number(required('PEER_PORT'));
const encrypt = process.env.PEER_ENCRYPT !== '0';
const resourceKey = createPublicKey({
  key: JSON.parse(readFileSync(required('PEER_RESOURCE_JWK'), 'utf8')),
  format: 'jwk',
});

// The one signing key: ES256, for access tokens. The client names ES256 for
// ID tokens too, since oidc-provider rejects a client whose default (RS256)
// has no key.
const signingKey = {
  ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }),
  alg: 'ES256',
  use: 'sig',
  kid: 'es256',
};

const resourceServer = {
  scope: SCOPE,
  audience: RESOURCE,
  accessTokenTTL: ACCESS_TOKEN_TTL_SECONDS,
  accessTokenFormat: 'jwt',
  jwt: {
    sign: { alg: 'ES256' },
    ...(encrypt ? { encrypt: { alg: 'ECDH-ES+A256KW', enc: 'A256GCM', key: resourceKey } } : {}),
  },
};

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [
    {
      client_id: required('PEER_CLIENT_ID'),
      client_secret: required('PEER_CLIENT_SECRET'),
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'ES256',
      scope: SCOPE,
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: ['bench-only-cookie-key'] },
  scopes: ['openid', SCOPE],
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      // A request without `resource` gets the bench resource server, as
      // Tessera's client with `--default-resource` does.
      defaultResource: () => RESOURCE,
      getResourceServerInfo: (ctx, indicator) => {
        if (indicator !== RESOURCE) {
          throw new Provider.errors.InvalidTarget();
        }
        return resourceServer;
      },
      useGrantedResource: () => true,
    },
  },
});

provider.listen(port, '127.0.0.1', () => {
  console.log('listening');
});
