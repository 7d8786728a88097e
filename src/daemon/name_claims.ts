/**
 * Flags a stranger that claims a name this node already binds elsewhere: a
 * trusted peer's hostname, or a name in the `--peer` table. Such a claim is
 * shown (pending, peers, an event), never followed and never a reason to
 * fail sends to the real peer.
 *
 * @module
 */
import { type Endpoint, parseEndpoint } from "../discovery/endpoint.ts";
import type { TrustEntry } from "../services/trust_types.ts";

/** Which binding a claim collides with, or null when it collides with none. */
export type NameConflict = "trusted" | "configured" | null;

/**
 * Whether an untrusted key's self-claimed hostname collides with a binding.
 * A configured name collides only when the claim comes from another
 * endpoint than the configured one (the real peer claims its own name).
 */
export function nameConflict(
  claim: { keyHex: string; hostname: string | null; endpoint: Endpoint | null },
  trusted: readonly TrustEntry[],
  configured: Readonly<Record<string, string>>,
): NameConflict {
  const name = claim.hostname;
  if (name === null || name === "") return null;
  if (trusted.some((e) => e.public_key === claim.keyHex)) return null;
  if (trusted.some((e) => e.hostname === name)) return "trusted";
  if (!Object.hasOwn(configured, name) || claim.endpoint === null) return null;
  const at = parseEndpoint(configured[name]!);
  // A DNS name cannot be compared without resolving it: no flag rather than a false one.
  if (!/^[\d.]+$/.test(at.host) && !at.host.includes(":")) return null;
  const same = at.host === claim.endpoint.hostname && at.port === claim.endpoint.port;
  return same ? null : "configured";
}
