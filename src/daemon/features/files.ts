/**
 * `pilot send-file`: streams a file of any size to a trusted peer's port
 * 1001, SHA-256 verified at the peer (the receiving side is
 * received_files.ts behind services/messages/server.ts). It returns a domain
 * value; control/views.ts shapes it into the API's JSON.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { basename } from "node:path";
import { PORT_MESSAGES } from "../../constants.ts";
import { invalid } from "../../errors.ts";
import { refusalError } from "../errors_map.ts";
import { type PeerRef, peerRef } from "../../session/peer_ref.ts";
import type { FileReceipt, MessagesClient } from "../../services/messages/client.ts";
import type { NodeContext } from "../context.ts";
import { withTimeout } from "../../with_timeout.ts";

/** A file delivered by `pilot send-file`. */
export interface SentFile {
  /** The receiver. */
  to: PeerRef;
  /** The name offered (the file's base name). */
  name: string;
  /** The name the receiver stored it under. */
  storedAs: string;
  /** Content size in bytes. */
  bytes: number;
  /** SHA-256 of the content, hex, as the receiver verified it. */
  sha256: string;
  /** The receiver's receipt. */
  receipt: {
    /** Stored now, or the same content stored before. */
    status: Exclude<FileReceipt["status"], "refused">;
    /** The receiver's received-files seq. */
    seq: number;
    /** The transfer id (that of the earlier transfer for a duplicate). */
    id: string;
  };
}

/** The file command over a node's context. */
export class FilesFeature {
  #ctx: NodeContext;
  #client: MessagesClient;

  /** Creates the feature over `ctx` and the port-1001 client. */
  constructor(ctx: NodeContext, client: MessagesClient) {
    this.#ctx = ctx;
    this.#client = client;
  }

  /** `pilot send-file`: streams a file of any size; SHA-256 verified at the peer. */
  async sendFile(
    text: string,
    path: string,
    timeoutMs: number,
    onProgress?: (sent: number, size: number) => void,
  ): Promise<SentFile> {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(path);
    } catch (e) {
      throw invalid(`Cannot read "${path}": ${(e as Error).message}`, "check the path");
    }
    if (!info.isFile) throw invalid(`"${path}" is not a regular file`, "send files one at a time");
    const hash = createHash("sha256");
    try {
      using file = await Deno.open(path, { read: true });
      for await (const chunk of file.readable) hash.update(chunk);
    } catch (e) {
      throw invalid(`Cannot read "${path}": ${(e as Error).message}`, "check its permissions");
    }
    const sha256 = new Uint8Array(hash.digest());
    const peer = await this.#ctx.reach.reachTrusted(text, timeoutMs);
    const { streams, reach } = this.#ctx;
    const conn = await streams.open(peer, reach.endpointOf(peer.keyHex), PORT_MESSAGES, timeoutMs);
    const file = await Deno.open(path, { read: true });
    try {
      const receipt = await withTimeout(
        this.#client.sendFile(conn, {
          name: basename(path),
          size: info.size,
          sha256,
          read: file.readable,
          ...(onProgress ? { onProgress } : {}),
        }),
        timeoutMs,
        "file transfer",
      );
      await conn.close().catch(() => {});
      if (receipt.status === "refused") {
        throw refusalError(receipt.detail || "internal", { peer: peer.address, what: "the file" });
      }
      return {
        to: peerRef(peer),
        name: basename(path),
        storedAs: receipt.name,
        bytes: receipt.size,
        sha256: receipt.sha256,
        receipt: { status: receipt.status, seq: receipt.seq, id: receipt.id },
      };
    } catch (e) {
      conn.reset("file transfer failed");
      throw e;
    } finally {
      try {
        file.close();
      } catch {
        // already closed by its stream
      }
    }
  }
}
