// Opens Tessera's nested access tokens with the `jose` package, a JOSE
// implementation independent of Tessera's: decrypts the outer JWE with the
// resource server's private key, then verifies the inner JWS against
// Tessera's JWKS fetched over HTTP. Prints one JSON result per token.
//
// Usage: node decrypt-verify.mjs JWKS_URL ISSUER AUDIENCE PRIVATE_JWK TOKEN...
// PRIVATE_JWK is the resource server's private key as JWK JSON text.

import { compactDecrypt, createRemoteJWKSet, importJWK, jwtVerify } from 'jose';

const [jwksUrl, issuer, audience, privateJwkText, ...tokens] = process.argv.slice(2);
if (!jwksUrl || !issuer || !audience || !privateJwkText || tokens.length === 0) {
  console.error('usage: node decrypt-verify.mjs JWKS_URL ISSUER AUDIENCE PRIVATE_JWK TOKEN...');
  process.exit(2);
}

const privateJwk = JSON.parse(privateJwkText);
const keyManagement = privateJwk.kty === 'RSA' ? 'RSA-OAEP-256' : 'ECDH-ES+A256KW';
const privateKey = await importJWK(privateJwk, keyManagement);
const jwks = createRemoteJWKSet(new URL(jwksUrl));

const results = [];
for (const token of tokens) {
  try {
    const { plaintext, protectedHeader: outerHeader } = await compactDecrypt(token, privateKey, {
      keyManagementAlgorithms: ['ECDH-ES+A256KW', 'RSA-OAEP-256'],
      contentEncryptionAlgorithms: ['A256GCM'],
    });
    const inner = new TextDecoder().decode(plaintext);
    const { payload, protectedHeader: innerHeader } = await jwtVerify(inner, jwks, {
      issuer,
      audience,
      typ: 'at+jwt',
      algorithms: ['RS256', 'ES256', 'PS256', 'EdDSA'],
    });
    results.push({ verified: true, outerHeader, innerHeader, payload });
  } catch (error) {
    results.push({ verified: false, code: error.code ?? error.name });
  }
}
console.log(JSON.stringify(results));
