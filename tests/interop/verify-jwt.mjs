// Verifies JWTs against a JWKS fetched over HTTP with the `jose` package,
// a JOSE implementation independent of Tessera's. Tessera's interop test
// runs it with node and reads one JSON result per token from stdout.
//
// Usage: node verify-jwt.mjs JWKS_URL ISSUER TOKEN...

import { createRemoteJWKSet, jwtVerify } from 'jose';

const [jwksUrl, issuer, ...tokens] = process.argv.slice(2);
if (!jwksUrl || !issuer || tokens.length === 0) {
  console.error('usage: node verify-jwt.mjs JWKS_URL ISSUER TOKEN...');
  process.exit(2);
}

const jwks = createRemoteJWKSet(new URL(jwksUrl));
const results = [];
for (const token of tokens) {
  try {
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      issuer,
      algorithms: ['RS256', 'ES256', 'PS256', 'EdDSA'],
    });
    results.push({ verified: true, header: protectedHeader, payload });
  } catch (error) {
    results.push({ verified: false, code: error.code ?? error.name });
  }
}
console.log(JSON.stringify(results));
