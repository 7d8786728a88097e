/**
 * The disk side of receiving a file: content goes to a temp file
 * (`received/.incoming-<uuid>`, mode 0600) through {@linkcode IncomingFile};
 * once verified it is fsynced and linked under a name that exists nowhere
 * yet ({@linkcode linkUnique}: never an overwrite), the temp name removed and
 * the folder fsynced. A crash leaves a temp file (removed at the next open)
 * or a stored file. I/O failures become a `Refusal` (`disk_full`,
 * `io_error`) that the messages server sends back as the receipt's detail.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { basename, dirname, join } from "node:path";
import type { FileWriter, StoredFile } from "../services/messages/file_receiver.ts";
import { Refusal } from "../services/refusal.ts";
import { numberedName } from "./safe_file_name.ts";
import { syncDirectory } from "./home.ts";

/** Prefix of temp files in the received folder (hidden: stored names never start with a dot). */
export const TEMP_PREFIX = ".incoming-";
/** Numbered names tried before a random tag is used. */
const NAME_ATTEMPTS = 1000;

/**
 * The refusal code for a storage failure: `disk_full` for ENOSPC and
 * EDQUOT, `io_error` for anything else.
 */
export function storageErrorCode(e: unknown): "disk_full" | "io_error" {
  const code = (e as { code?: unknown } | null)?.code;
  if (code === "ENOSPC" || code === "EDQUOT") return "disk_full";
  const message = e instanceof Error ? e.message : "";
  if (/os error (28|122)\)|no space left|quota exceeded/i.test(message)) return "disk_full";
  return "io_error";
}

/** A storage failure as the refusal the sender is told. */
export function storageRefusal(e: unknown): Refusal {
  return new Refusal(storageErrorCode(e), e instanceof Error ? e.message : String(e));
}

/** Size and SHA-256 (hex) of a file's content, read in chunks. */
export async function hashFile(path: string): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash("sha256");
  let bytes = 0;
  const file = await Deno.open(path, { read: true });
  try {
    const buf = new Uint8Array(256 * 1024);
    for (;;) {
      const n = await file.read(buf);
      if (n === null) break;
      hash.update(buf.subarray(0, n));
      bytes += n;
    }
  } finally {
    file.close();
  }
  return { bytes, sha256: hash.digest("hex") };
}

/**
 * Links `temp` into `dir` under `name`, or the first free numbered variant
 * (`name (1).ext`, …), then removes `temp` and fsyncs `dir`; returns the
 * name used. Never overwrites. Throws a `Refusal` after removing both names.
 */
export async function linkUnique(dir: string, temp: string, name: string): Promise<string> {
  let finalName = "";
  try {
    for (let n = 0; finalName === ""; n++) {
      const c = numberedName(name, n < NAME_ATTEMPTS ? n : crypto.randomUUID());
      const path = join(dir, c);
      // Belt and braces: a sanitised name is one component, but never trust it blindly.
      if (dirname(path) !== dir || basename(path) !== c) {
        throw new Error(`Unsafe stored name ${JSON.stringify(c)}`);
      }
      try {
        await Deno.link(temp, path);
        finalName = c;
      } catch (e) {
        if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
        if (n > NAME_ATTEMPTS + 10) throw e;
      }
    }
    await Deno.remove(temp);
    await syncDirectory(dir);
  } catch (e) {
    if (finalName !== "") await Deno.remove(join(dir, finalName)).catch(() => {});
    await Deno.remove(temp).catch(() => {});
    throw storageRefusal(e);
  }
  return finalName;
}

/** A file being received into a temp file; `commit` hands it to the store. */
export class IncomingFile implements FileWriter {
  #temp: string;
  #file: Deno.FsFile | null;
  #commit: () => Promise<{ file: StoredFile; duplicate: boolean }>;
  #done = false;

  /** Writes into the open `file` at `temp`; `commit` runs once the content is fsynced. */
  constructor(
    temp: string,
    file: Deno.FsFile,
    commit: () => Promise<{ file: StoredFile; duplicate: boolean }>,
  ) {
    this.#temp = temp;
    this.#file = file;
    this.#commit = commit;
  }

  /** Appends content; a failure is a `Refusal` (`disk_full`, `io_error`). */
  async write(bytes: Uint8Array): Promise<void> {
    const file = this.#file;
    if (file === null || this.#done) {
      throw new Refusal("internal", "The file was already committed or aborted");
    }
    try {
      let written = 0;
      while (written < bytes.length) written += await file.write(bytes.subarray(written));
    } catch (e) {
      throw storageRefusal(e);
    }
  }

  /** Fsyncs the content and commits it; from here on the temp file goes whatever happens. */
  async commit(): Promise<{ file: StoredFile; duplicate: boolean }> {
    const file = this.#file;
    if (file === null || this.#done) {
      throw new Refusal("internal", "The file was already committed or aborted");
    }
    this.#done = true;
    try {
      await file.sync();
    } catch (e) {
      this.#close();
      await Deno.remove(this.#temp).catch(() => {});
      throw storageRefusal(e);
    }
    this.#close();
    return await this.#commit();
  }

  /** Discards the partial content; idempotent, never throws. */
  async abort(): Promise<void> {
    this.#close();
    if (this.#done) return;
    this.#done = true;
    await Deno.remove(this.#temp).catch(() => {});
  }

  #close(): void {
    try {
      this.#file?.close();
    } catch {
      // Already closed.
    }
    this.#file = null;
  }
}
