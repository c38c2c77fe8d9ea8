// Runs a relying party built on `openid-client` (v6, OpenID-certified)
// against Tessera, through the library's public API only. It covers
// discovery, the authorization code flow with PKCE (S256), state and nonce,
// the token exchange with ID token validation, userinfo, refresh with
// rotation, the rejection of a rotated refresh token, and the RP-initiated
// logout URL.
//
// Usage: node relying-party.mjs ISSUER CLIENT_ID REDIRECT_URI POST_LOGOUT_URI SCOPE
//
// The client secret comes from the environment variable RP_CLIENT_SECRET;
// without it the client authenticates with `none` (a public client).
// The script prints one JSON object per line on stdout, each with a `step`:
// first `authorization_url`, after which it reads the callback URL (the
// authorization response) as one line on stdin. It prints no token or
// secret. Any error exits with status 1 and the library's message on stderr.

import { createInterface } from 'node:readline';
import * as client from 'openid-client';

const [issuer, clientId, redirectUri, postLogoutRedirectUri, scope] = process.argv.slice(2);
if (!scope) {
  console.error(
    'usage: node relying-party.mjs ISSUER CLIENT_ID REDIRECT_URI POST_LOGOUT_URI SCOPE',
  );
  process.exit(2);
}

function emit(step, fields) {
  console.log(JSON.stringify({ step, ...fields }));
}

function readLine() {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: process.stdin });
    lines.once('line', (line) => {
      // Settled first, because closing emits `close` at once. An open
      // stdin would keep node from exiting, and nothing else is read.
      resolve(line.trim());
      lines.close();
      process.stdin.destroy();
    });
    lines.once('close', () => reject(new Error('stdin closed before the callback URL arrived')));
  });
}

// Returns the OAuth error code of a rejected grant and rethrows any other
// error.
async function grantError(attempt) {
  try {
    await attempt();
  } catch (error) {
    if (error instanceof client.ResponseBodyError) {
      return error.error;
    }
    throw error;
  }
  throw new Error('the token endpoint accepted a refresh token it should have rejected');
}

async function main() {
  const server = new URL(issuer);
  // Plain http is allowed for Tessera on loopback only.
  if (!['127.0.0.1', '[::1]'].includes(server.hostname)) {
    throw new Error(`issuer ${issuer} is not on loopback, and plain http is allowed only there`);
  }
  const secret = process.env.RP_CLIENT_SECRET;
  const authentication = secret ? client.ClientSecretBasic(secret) : client.None();
  // Over plain http no TLS server check vouches for the token endpoint, so
  // ID token signatures are checked against the JWKS as well.
  const config = await client.discovery(server, clientId, undefined, authentication, {
    execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks],
  });
  const metadata = config.serverMetadata();
  emit('discovery', {
    issuer: metadata.issuer,
    end_session_endpoint: metadata.end_session_endpoint,
  });

  const codeVerifier = client.randomPKCECodeVerifier();
  const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier);
  const state = client.randomState();
  const nonce = client.randomNonce();
  const authorizationUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope,
    code_challenge: codeChallenge,
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  emit('authorization_url', { url: authorizationUrl.href });

  const callback = new URL(await readLine());
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: codeVerifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  emit('tokens', {
    id_token_claims: claims,
    nonce_matches: claims.nonce === nonce,
    token_type: tokens.token_type,
    scope: tokens.scope,
    expires_in: tokens.expiresIn(),
    has_refresh_token: typeof tokens.refresh_token === 'string',
  });

  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  emit('userinfo', { userinfo });

  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  emit('refresh', {
    id_token_claims: refreshed.claims() ?? null,
    rotated:
      typeof refreshed.refresh_token === 'string' &&
      refreshed.refresh_token !== tokens.refresh_token,
    new_access_token: refreshed.access_token !== tokens.access_token,
  });

  // Presenting the rotated token again is a replay: Tessera rejects it and
  // revokes the grant, so the newest refresh token stops working as well.
  const replayed = await grantError(() => client.refreshTokenGrant(config, tokens.refresh_token));
  const afterReplay = await grantError(() =>
    client.refreshTokenGrant(config, refreshed.refresh_token),
  );
  emit('replay', { replayed_error: replayed, newest_error: afterReplay });

  const logoutState = client.randomState();
  const logoutUrl = client.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token,
    post_logout_redirect_uri: postLogoutRedirectUri,
    state: logoutState,
  });
  emit('logout_url', { url: logoutUrl.href, state: logoutState });
}

try {
  await main();
} catch (error) {
  const details = [error.code, error.error, error.error_description].filter(Boolean);
  console.error(`openid-client: ${error.message}${details.length ? ` (${details.join(', ')})` : ''}`);
  process.exitCode = 1;
}
