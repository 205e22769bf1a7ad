// JWT (HS256) issue and verification with jose. The token travels in the upgrade request:
// `Authorization: Bearer <jwt>` (Node clients), a `Sec-WebSocket-Protocol` entry
// `access_token.<jwt>` (browsers cannot set headers), or `?token=<jwt>` (ws-apm redacts
// `token` from every recorded URL by default).
'use strict';
const { SignJWT, jwtVerify } = require('jose');

const PROTOCOL_PREFIX = 'access_token.';

/** @param {string} secret */
function keyOf(secret) {
  if (!secret) throw new Error('JWT_SECRET is required');
  return new TextEncoder().encode(secret);
}

/**
 * A signed token for `user`, valid `ttlSeconds`.
 * @param {string} secret @param {string} user @param {number} ttlSeconds
 */
async function issueToken(secret, user, ttlSeconds) {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(user)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(keyOf(secret));
}

/**
 * The token of an upgrade request, wherever the client put it.
 * @param {import('node:http').IncomingMessage} req
 * @returns {string | undefined}
 */
function tokenOf(req) {
  const auth = req.headers.authorization;
  if (auth && /^Bearer\s+/i.test(auth)) return auth.replace(/^Bearer\s+/i, '').trim();
  const protocols = String(req.headers['sec-websocket-protocol'] || '').split(',').map((p) => p.trim());
  const fromProtocol = protocols.find((p) => p.startsWith(PROTOCOL_PREFIX));
  if (fromProtocol) return fromProtocol.slice(PROTOCOL_PREFIX.length);
  const query = new URL(req.url || '/', 'http://x').searchParams.get('token');
  return query || undefined;
}

/**
 * The verified user id (JWT `sub`) of an upgrade request; throws when the token is missing or invalid.
 * @param {string} secret @param {import('node:http').IncomingMessage} req
 * @returns {Promise<string>}
 */
async function authenticate(secret, req) {
  const token = tokenOf(req);
  if (!token) throw new Error('no token');
  const { payload } = await jwtVerify(token, keyOf(secret), { algorithms: ['HS256'] });
  if (typeof payload.sub !== 'string' || payload.sub === '') throw new Error('token without sub');
  return payload.sub;
}

module.exports = { PROTOCOL_PREFIX, issueToken, tokenOf, authenticate };
