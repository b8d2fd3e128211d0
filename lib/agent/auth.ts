/**
 * Bearer-token authentication: tokens are configured as SHA-256 hashes and compared with
 * `crypto.timingSafeEqual` against every configured hash (no early exit).
 * @module
 */
import { timingSafeEqual } from 'node:crypto';
import { hashToken, isLoopbackHost, type AgentConfig, type Scope } from './config.js';
import { AuthError } from './errors.js';

/** Who made a request: a token's name, or `anonymous`, with the scopes it holds. */
export interface Principal {
  /** Token name, or `anonymous`. */
  name: string;
  /** Scopes held. */
  scopes: readonly Scope[];
}

/** Whether `scopes` grant `needed` (`admin` grants everything). */
export function hasScope(scopes: readonly Scope[], needed: Scope): boolean {
  return scopes.includes('admin') || scopes.includes(needed);
}

/**
 * Builds the authenticator of `config.auth`: `(authorization header, remote address)` to a
 * {@link Principal}, or an {@link AuthError} (401) for a missing, malformed or unknown token.
 * A request without a token gets `auth.anonymous` scopes only when configured and when it
 * comes from a loopback address; a request with a wrong token never falls back to anonymous.
 */
export function createAuthenticator(auth: AgentConfig['auth']): (authorization: string | undefined, remoteAddress: string | undefined) => Principal {
  const entries = auth.tokens.map((t) => ({ name: t.name, scopes: t.scopes, hash: Buffer.from(t.sha256, 'hex') }));
  return (authorization, remoteAddress) => {
    if (authorization === undefined || authorization === '') {
      if (auth.anonymous !== null && remoteAddress !== undefined && isLoopbackHost(remoteAddress)) {
        return { name: 'anonymous', scopes: auth.anonymous };
      }
      throw new AuthError(401, 'Authentication required: send Authorization: Bearer <token>');
    }
    const m = /^Bearer +([\x21-\x7e]{1,4096})$/i.exec(authorization);
    if (!m) throw new AuthError(401, 'Malformed Authorization header: expected "Bearer <token>"');
    const presented = Buffer.from(hashToken(m[1]!), 'hex');
    let found: (typeof entries)[number] | undefined;
    for (const e of entries) {
      // Every entry is compared, whatever matched before: the time does not depend on which one matches.
      if (timingSafeEqual(presented, e.hash) && !found) found = e;
    }
    if (!found) throw new AuthError(401, 'Invalid token');
    return { name: found.name, scopes: found.scopes };
  };
}
