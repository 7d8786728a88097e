/**
 * The data-exchange service on virtual port 1001: delivers a message
 * envelope as fragments, repeats them until the receiver's receipt arrives,
 * and on the receiving side reassembles, stores (through the sink, which
 * appends to the durable inbox) and only then answers with a receipt.
 * Reassembly is bounded per peer and in total, so a peer that never finishes
 * a message cannot grow this daemon's memory.
 *
 * @module
 */
import {
  MAX_REASSEMBLY_BYTES,
  MAX_TRANSFERS_PER_PEER,
  PORT_DATA,
  REASSEMBLY_TIMEOUT_MS,
} from "../constants.ts";
import type { PeerIdentity } from "../session/peer_identity.ts";
import { randomBytes } from "../session/crypto.ts";
import {
  type DataPacket,
  decodeDataPacket,
  decodeEnvelope,
  encodeDataPacket,
  encodeEnvelope,
  type Envelope,
  fragment,
} from "../wire/data_message.ts";
import { Exchanges } from "./exchange.ts";
import type { MessageSink, Receipt } from "./exchange_stream.ts";

export type { MessageSink, Receipt };
import type { DatagramContext, PortService } from "./port_service.ts";

/** What the data service needs from the node. */
export interface DataServiceOptions {
  /** Stores received messages. */
  sink: MessageSink;
  /** Sends a port-1001 datagram to a peer over its current session. */
  send(peerKeyHex: string, payload: Uint8Array): Promise<boolean>;
  /** Monotonic clock (ms). */
  now?: () => number;
}

interface Transfer {
  peer: string;
  chunks: (Uint8Array | undefined)[];
  received: number;
  bytes: number;
  lastAt: number;
}

const RECEIPT_CACHE = 4096;

/** The data-exchange service. */
export class DataService implements PortService {
  /** Port 1001. */
  readonly port = PORT_DATA;
  /** Service name. */
  readonly name = "data";
  /** Datagrams and messages refused, by reason. */
  readonly refused: Record<string, number> = {};
  #o: DataServiceOptions;
  #now: () => number;
  #transfers = new Map<string, Transfer>();
  #bytes = 0;
  #receipts = new Map<string, Uint8Array>();
  #storing = new Set<string>();
  #exchanges = new Exchanges<Receipt>();

  /** Creates the service. */
  constructor(options: DataServiceOptions) {
    this.#o = options;
    this.#now = options.now ?? (() => performance.now());
  }

  #refuse(reason: string): void {
    this.refused[reason] = (this.refused[reason] ?? 0) + 1;
  }

  /** Sends a message and waits for its receipt; undefined when none came in time. */
  async deliver(peerKeyHex: string, envelope: Envelope, timeoutMs: number) {
    const transfer = randomBytes(8);
    const packets = fragment(transfer, encodeEnvelope(envelope)).map(encodeDataPacket);
    return await this.#exchanges.run(transfer.toHex(), async () => {
      for (const p of packets) await this.#o.send(peerKeyHex, p);
    }, timeoutMs);
  }

  /** Handles one port-1001 datagram. */
  async onDatagram(packet: { payload: Uint8Array }, ctx: DatagramContext): Promise<void> {
    let p: DataPacket;
    try {
      p = decodeDataPacket(packet.payload);
    } catch {
      return this.#refuse("malformed");
    }
    const id = `${ctx.peer.keyHex}:${p.transfer.toHex()}`;
    if (p.op === "receipt") {
      this.#exchanges.answer(p.transfer.toHex(), p);
      return;
    }
    const done = this.#receipts.get(id);
    if (done !== undefined) {
      // The sender missed our receipt and repeats: answer again, store nothing.
      await ctx.reply(done);
      return;
    }
    const envelope = this.#collect(id, ctx.peer.keyHex, p);
    if (envelope === undefined) return;
    const receipt = await this.#store(ctx.peer, envelope);
    const bytes = encodeDataPacket({ op: "receipt", transfer: p.transfer, ...receipt });
    this.#receipts.set(id, bytes);
    if (this.#receipts.size > RECEIPT_CACHE) {
      this.#receipts.delete(this.#receipts.keys().next().value!);
    }
    await ctx.reply(bytes);
  }

  /** Adds a fragment; returns the whole envelope once every fragment is in. */
  #collect(
    id: string,
    peer: string,
    p: Extract<DataPacket, { op: "fragment" }>,
  ): Uint8Array | undefined {
    this.#expire();
    let t = this.#transfers.get(id);
    if (t === undefined) {
      let perPeer = 0;
      for (const x of this.#transfers.values()) if (x.peer === peer) perPeer++;
      if (perPeer >= MAX_TRANSFERS_PER_PEER) {
        this.#refuse("too_many_transfers");
        return undefined;
      }
      t = { peer, chunks: new Array(p.count), received: 0, bytes: 0, lastAt: this.#now() };
      this.#transfers.set(id, t);
    }
    if (t.chunks.length !== p.count) {
      this.#refuse("inconsistent_fragment");
      return undefined;
    }
    t.lastAt = this.#now();
    if (t.chunks[p.index] !== undefined) return undefined;
    if (this.#bytes + p.chunk.length > MAX_REASSEMBLY_BYTES) {
      this.#refuse("reassembly_full");
      return undefined;
    }
    t.chunks[p.index] = p.chunk;
    t.received++;
    t.bytes += p.chunk.length;
    this.#bytes += p.chunk.length;
    if (t.received < t.chunks.length) return undefined;
    this.#drop(id, t);
    const out = new Uint8Array(t.bytes);
    let o = 0;
    for (const c of t.chunks) {
      out.set(c!, o);
      o += c!.length;
    }
    return out;
  }

  #drop(id: string, t: Transfer): void {
    this.#transfers.delete(id);
    this.#bytes -= t.bytes;
  }

  #expire(): void {
    const now = this.#now();
    for (const [id, t] of this.#transfers) {
      if (now - t.lastAt >= REASSEMBLY_TIMEOUT_MS) this.#drop(id, t);
    }
  }

  async #store(peer: PeerIdentity, bytes: Uint8Array): Promise<Receipt> {
    let envelope: Envelope;
    try {
      envelope = decodeEnvelope(bytes);
    } catch {
      this.#refuse("malformed_envelope");
      return { status: "refused", seq: 0, detail: "invalid_argument" };
    }
    // Two copies of one message (a retry racing the original) store once.
    const key = `${peer.keyHex}:${envelope.id}`;
    if (this.#storing.has(key)) return { status: "refused", seq: 0, detail: "retry" };
    this.#storing.add(key);
    try {
      const { seq, duplicate } = await this.#o.sink.store(peer, envelope);
      return { status: duplicate ? "duplicate" : "stored", seq, detail: "" };
    } catch (e) {
      // Only a short error code travels back; anything else is an internal error.
      const message = e instanceof Error ? e.message : "";
      const code = /^[a-z_]{1,64}$/.test(message) ? message : "internal";
      this.#refuse(code);
      return { status: "refused", seq: 0, detail: code };
    } finally {
      this.#storing.delete(key);
    }
  }
}
