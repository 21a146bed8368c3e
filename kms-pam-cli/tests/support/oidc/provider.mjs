// The OpenID Connect provider of the single sign-on tests: the certified `oidc-provider` package
// (pinned in package.json, installed by .ci/oidc-node into target/oidc-node), started by
// kms-pam-cli/tests/support/oidc.rs with one argument, the path of a JSON configuration:
//
//   { "clients": [{ "client_id", "client_secret", "redirect_uris": [..],
//                   "token_endpoint_auth_method": "client_secret_basic" | "client_secret_post" }],
//     "users": [{ "login", "email", "name", "groups": [..] }],
//     "install_dir": "…/target/oidc-node", "ready_file": "/tmp/…/ready" }
//
// It listens on a free port of 127.0.0.1 (the issuer is http://127.0.0.1:PORT) and writes the port
// to `ready_file` once it answers. Besides the provider's own routes it serves a small test
// control under /__test/ (same port, loopback only):
//
//   POST /__test/users/LOGIN/groups   {"groups": [..]}   the account's groups from now on
//   POST /__test/users/LOGIN/disable                     findAccount answers undefined from now on
//   POST /__test/rotate-keys                             a new RS256 key signs; old keys stay in the JWKS
//
// Key rotation builds a new Provider with the new key set and the same adapter storage and cookie
// keys, and swaps the request handler: sessions, interactions, grants and tokens survive it.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

// oidc-provider from the installation .ci/oidc-node made (ESM imports ignore NODE_PATH).
const entry = createRequire(join(config.install_dir, 'package.json')).resolve('oidc-provider');
const { default: Provider } = await import(pathToFileURL(entry).href);

// The accounts, by login (= account id = sub).
const users = new Map(config.users.map((user) => [user.login, { ...user, disabled: false }]));

async function findAccount(_ctx, id) {
  const user = users.get(id);
  if (!user || user.disabled) {
    return undefined;
  }
  return {
    accountId: id,
    // Read at every token: a refresh answers with the account's current groups.
    async claims() {
      return {
        sub: id,
        email: user.email,
        email_verified: true,
        name: user.name,
        preferred_username: user.login,
        groups: [...user.groups],
      };
    },
  };
}

// Signing keys, newest first: the first RS256 key signs, all are published.
let keyCount = 0;
function newSigningKey() {
  keyCount += 1;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = `test-key-${keyCount}-${randomBytes(4).toString('hex')}`;
  return { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
}
const signingKeys = [newSigningKey()];

// The provider's storage, shared by every Provider built here (rotation keeps it).
const storage = new Map(); // key -> { payload, expiresAt }
const grantMembers = new Map(); // grantId -> Set of storage keys
const alive = (key) => {
  const entry = storage.get(key);
  if (entry && entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
    storage.delete(key);
    return undefined;
  }
  return entry;
};
class SharedMemoryAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : undefined;
    storage.set(key, { payload, expiresAt });
    if (this.model === 'Session' && payload.uid) {
      storage.set(`sessionUid:${payload.uid}`, { payload: id, expiresAt });
    }
    if (payload.userCode) {
      storage.set(`userCode:${payload.userCode}`, { payload: id, expiresAt });
    }
    if (payload.grantId) {
      if (!grantMembers.has(payload.grantId)) {
        grantMembers.set(payload.grantId, new Set());
      }
      grantMembers.get(payload.grantId).add(key);
    }
  }

  async find(id) {
    return alive(this.key(id))?.payload;
  }

  async findByUid(uid) {
    const id = alive(`sessionUid:${uid}`)?.payload;
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = alive(`userCode:${userCode}`)?.payload;
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const entry = alive(this.key(id));
    if (entry) {
      entry.payload.consumed = Math.floor(Date.now() / 1000);
    }
  }

  async destroy(id) {
    storage.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of grantMembers.get(grantId) ?? []) {
      storage.delete(key);
    }
    grantMembers.delete(grantId);
  }
}

const cookieKeys = [randomBytes(32).toString('hex')];

function buildProvider(issuer) {
  const provider = new Provider(issuer, {
    adapter: SharedMemoryAdapter,
    clients: config.clients.map((client) => ({
      client_id: client.client_id,
      client_secret: client.client_secret,
      redirect_uris: client.redirect_uris,
      grant_types: [
        'authorization_code',
        'refresh_token',
        'urn:ietf:params:oauth:grant-type:device_code',
      ],
      response_types: ['code'],
      token_endpoint_auth_method: client.token_endpoint_auth_method ?? 'client_secret_basic',
    })),
    findAccount,
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups'],
    },
    scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
    // ID tokens carry every claim of the granted scopes, not only those asked for by `claims`.
    conformIdTokenClaims: false,
    // A refresh token whenever the client may use one, without offline_access and prompt=consent
    // (oidc-provider's default), and not bound to the browser session: like most providers.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    expiresWithSession: async () => false,
    // Every refresh answers with a new refresh token.
    rotateRefreshToken: true,
    features: {
      devInteractions: { enabled: true },
      deviceFlow: { enabled: true },
      revocation: { enabled: true },
    },
    // KMS always sends PKCE (S256, the only method oidc-provider accepts): required here, so a
    // KMS that stops sending it fails the tests.
    pkce: { required: () => true },
    jwks: { keys: signingKeys },
    cookies: { keys: cookieKeys },
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      DeviceCode: 600,
      IdToken: 600,
      RefreshToken: 24 * 3600,
      Grant: 24 * 3600,
      Session: 24 * 3600,
      Interaction: 600,
    },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      const text = Object.entries(out)
        .map(([key, value]) => `<p><b>${key}</b>: <span class="${key}">${String(value).replace(/[<>&"]/g, '')}</span></p>`)
        .join('');
      ctx.body = `<!DOCTYPE html><html><head><title>oidc-provider error</title></head><body>${text}</body></html>`;
    },
  });
  provider.on('server_error', (_ctx, error) => console.error('server_error', error));
  provider.on('grant.error', (_ctx, error) => console.error('grant.error', error.message, error.error_description ?? ''));
  return provider;
}

function readJson(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      try {
        resolve(body ? JSON.parse(body) : {});
      } catch (error) {
        reject(error);
      }
    });
    req.on('error', reject);
  });
}

function answer(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

let handler; // the current provider's request handler
let issuer;

async function testControl(req, res) {
  const path = new URL(req.url, issuer).pathname;
  if (req.method !== 'POST') {
    return answer(res, 405, { error: 'POST only' });
  }
  const userRoute = path.match(/^\/__test\/users\/([^/]+)\/(groups|disable)$/);
  if (userRoute) {
    const user = users.get(decodeURIComponent(userRoute[1]));
    if (!user) {
      return answer(res, 404, { error: 'no such user' });
    }
    if (userRoute[2] === 'groups') {
      const { groups } = await readJson(req);
      user.groups = groups;
    } else {
      user.disabled = true;
    }
    console.log(`test control: ${path}`);
    return answer(res, 200, { login: user.login, groups: user.groups, disabled: user.disabled });
  }
  if (path === '/__test/rotate-keys') {
    signingKeys.unshift(newSigningKey());
    handler = buildProvider(issuer).callback();
    console.log(`test control: keys rotated, ${signingKeys[0].kid} signs`);
    return answer(res, 200, { kids: signingKeys.map((key) => key.kid) });
  }
  return answer(res, 404, { error: 'no such test control' });
}

const server = createServer((req, res) => {
  if (req.url.startsWith('/__test/')) {
    testControl(req, res).catch((error) => answer(res, 500, { error: String(error) }));
    return;
  }
  handler(req, res);
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  issuer = `http://127.0.0.1:${port}`;
  handler = buildProvider(issuer).callback();
  console.log(`oidc-provider listening, issuer ${issuer}`);
  const partial = `${config.ready_file}.partial`;
  writeFileSync(partial, String(port));
  renameSync(partial, config.ready_file);
});

// The test's end closes stdin; kill_on_drop sends SIGKILL anyway.
process.on('SIGTERM', () => process.exit(0));
