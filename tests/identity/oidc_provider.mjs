// A real OpenID provider for the identity tests (npm `oidc-provider` 9.x, installed by .ci/setup-oidc.sh).
//
//   node tests/identity/oidc_provider.mjs PORT
//
// Issuer http://127.0.0.1:PORT; dynamic client registration; the development login and consent forms (any
// login, any password); JWT access tokens for any resource a client names (RFC 8707), with the scopes
// `mcp` and `github` on offer. Prints "READY <issuer>" once it listens.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
const issuer = `http://127.0.0.1:${port}`;

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  jwks: { keys: [signingKey] },
  scopes: ['openid', 'offline_access', 'mcp', 'github'],
  findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  cookies: { keys: [randomUUID()] },
  features: {
    devInteractions: { enabled: true },
    registration: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (ctx, client, oneOf) => (oneOf ? oneOf[0] : undefined),
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resourceIndicator) => ({
        scope: 'mcp github',
        audience: resourceIndicator,
        accessTokenFormat: 'jwt',
        accessTokenTTL: 600,
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  clientDefaults: { grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'] },
});
provider.proxy = false;

provider.listen(port, '127.0.0.1', () => {
  console.log(`READY ${issuer}`);
});
process.on('SIGTERM', () => process.exit(0));
