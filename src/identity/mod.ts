/**
 * Identity layer: Ed25519 keys and their checks, the 48-bit address and its
 * stamp, fingerprints, the static-key binding, signed self-descriptions, and
 * the identity file.
 *
 * @module
 */

export * from "./ed25519.ts";
export * from "./address.ts";
export * from "./fingerprint.ts";
export * from "./static_key.ts";
export * from "./self_description.ts";
export * from "./identity.ts";
