/**
 * The node's identity file in its home: created once (with a stamp search),
 * then loaded at every start. A corrupt file, or one other users can read, is
 * refused with a clear error and never silently replaced: replacing it would
 * change the node's address and identity behind the user's back.
 *
 * @module
 */
import { join } from "node:path";
import { PilotError } from "../errors.ts";
import {
  createIdentity,
  decodeIdentityFile,
  encodeIdentityFile,
  type Identity,
  IdentityFileError,
} from "../identity/identity.ts";
import { createFileAtomic, HOME_FILES, readPrivateFile } from "./home.ts";

/** Loads the home's identity, creating it on first start. */
export async function loadOrCreateIdentity(
  home: string,
  onProgress?: (tried: number) => void,
): Promise<{ identity: Identity; created: boolean }> {
  const path = join(home, HOME_FILES.identity);
  const text = await readPrivateFile(path);
  if (text !== null) {
    try {
      return { identity: decodeIdentityFile(text), created: false };
    } catch (e) {
      if (!(e instanceof IdentityFileError)) throw e;
      throw new PilotError(
        "invalid_argument",
        `Identity file "${path}" is unusable: ${e.message}`,
        "restore it from a backup; moving it away creates a NEW identity and address",
      );
    }
  }
  const identity = await createIdentity(onProgress ? { onProgress } : {});
  if (!(await createFileAtomic(path, encodeIdentityFile(identity), 0o600))) {
    // Another process created the identity meanwhile: theirs wins, ours is dropped.
    return await loadOrCreateIdentity(home);
  }
  return { identity, created: true };
}
