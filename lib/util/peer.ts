/**
 * Loading of optional peer dependencies (package.json `peerDependenciesMeta.optional`): a
 * missing one becomes a typed {@link MissingPeerError} that names it and the install command.
 * @module
 */
import { MissingPeerError } from '../errors/index.js';

/**
 * The optional peers and their version ranges, equal to package.json `peerDependencies`
 * (test/package/peers.test.ts keeps them in step).
 * @internal
 */
export const OPTIONAL_PEERS = {
  dockerode: '^4.0.8',
  bullmq: '^6.7.6',
  ioredis: '^5.11.1',
} as const;

/** Name of an optional peer dependency. @internal */
export type OptionalPeer = keyof typeof OPTIONAL_PEERS;

/** The npm command that installs `packages` in their supported ranges. @internal */
export function installCommand(packages: readonly OptionalPeer[]): string {
  return `npm install ${packages.map((p) => `${p}@${OPTIONAL_PEERS[p]}`).join(' ')}`;
}

/**
 * The package among `packages` that `err` says cannot be found: Node's ESM loader reports
 * `ERR_MODULE_NOT_FOUND` ("Cannot find package 'x' imported from …"), `require` reports
 * `MODULE_NOT_FOUND` ("Cannot find module 'x'"). Undefined for any other error, including a
 * missing dependency of the peer itself.
 * @internal
 */
export function missingPackage(err: unknown, packages: readonly string[]): string | undefined {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (e?.code !== 'ERR_MODULE_NOT_FOUND' && e?.code !== 'MODULE_NOT_FOUND') return undefined;
  const msg = String(e.message);
  return packages.find((p) => msg.includes(`'${p}'`) || msg.includes(`"${p}"`) || msg.includes(`'${p}/`) || msg.includes(`"${p}/`));
}

/**
 * Runs `load` (a dynamic `import()` of a peer, or of one of our modules that imports peers)
 * and turns "cannot find package" for one of `packages` into a {@link MissingPeerError}.
 * Other errors pass through unchanged.
 * @internal
 */
export async function importPeer<T>(feature: string, packages: readonly OptionalPeer[], load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    const missing = missingPackage(err, packages);
    if (missing === undefined) throw err;
    throw new MissingPeerError(feature, [...packages], missing, installCommand(packages), { cause: err });
  }
}
