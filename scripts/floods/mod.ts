/**
 * Every attack of the flood harness, in the order issue 8 lists them, after
 * a baseline without any.
 *
 * @module
 */
import type { Attack } from "./_attack.ts";
import { baseline } from "./baseline.ts";
import { controlConnections } from "./control_connections.ts";
import { finalReplays, initManySources, initNewEphemerals } from "./handshake_frames.ts";
import { junk } from "./junk.ts";
import { handshakesManyIdentities } from "./many_identities.ts";
import { spoofedInit } from "./spoofed_init.ts";
import { staleIndexData } from "./stale_index.ts";
import { pinnedSegments, stalledMessageHeaders } from "./trusted_streams.ts";
import { untrustedStreamSegments } from "./untrusted_segments.ts";
import { trustRequestsBadSig, trustRequestsSigned } from "./trust_requests.ts";

/** The attacks `deno task floods` runs, in order. */
export const ATTACKS: readonly Attack[] = [
  baseline,
  junk,
  initNewEphemerals,
  spoofedInit,
  initManySources,
  handshakesManyIdentities,
  finalReplays,
  trustRequestsSigned,
  trustRequestsBadSig,
  staleIndexData,
  untrustedStreamSegments,
  pinnedSegments,
  stalledMessageHeaders,
  controlConnections,
];
