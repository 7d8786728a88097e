/**
 * Virtual ports bound by API clients (`pilot recv`): datagrams that arrive on
 * a bound port wait in a bounded queue until read; a full queue drops (and
 * counts) rather than grows. Unbound ports drop everything.
 *
 * @module
 */
import { MAX_RECV_QUEUE } from "../constants.ts";
import { PilotError } from "../errors.ts";

/** One received datagram as the API returns it. */
export interface ReceivedDatagram {
  /** Sender's address. */
  from: string;
  /** Sender's key, hex. */
  from_key: string;
  /** Sender's hostname or null. */
  hostname: string | null;
  /** Sender's fingerprint. */
  fingerprint: string;
  /** Sender's virtual port. */
  src_port: number;
  /** The data, base64. */
  data: string;
  /** Size in bytes. */
  bytes: number;
  /** ISO time received. */
  received_at: string;
}

/** A port bound by one reader. */
export class PortBinding {
  /** The bound port. */
  readonly port: number;
  /** Datagrams dropped because the queue was full. */
  overflowed = 0;
  #queue: ReceivedDatagram[] = [];
  #wake: (() => void) | undefined;

  /** Binds `port`. */
  constructor(port: number) {
    this.port = port;
  }

  /** Queues a datagram (dropping it when the queue is full). */
  push(d: ReceivedDatagram): void {
    if (this.#queue.length >= MAX_RECV_QUEUE) {
      this.overflowed++;
      return;
    }
    this.#queue.push(d);
    this.#wake?.();
  }

  /** Takes up to `max` queued datagrams, waiting until one arrives or the signal aborts. */
  async take(max: number, signal: AbortSignal): Promise<ReceivedDatagram[]> {
    while (this.#queue.length === 0 && !signal.aborted) {
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        signal.addEventListener("abort", () => resolve(), { once: true });
      });
      this.#wake = undefined;
    }
    return this.#queue.splice(0, max);
  }
}

/** Refuses a virtual port outside 1-65535 with `invalid_argument`. */
export function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new PilotError("invalid_argument", `Port ${port} is out of range`, "use 1-65535");
  }
}

/** The ports clients have bound. */
export class UserPorts {
  #bound = new Map<number, PortBinding>();

  /** Binds a port; `conflict` when it is taken. */
  bind(port: number, reserved: (port: number) => boolean): PortBinding {
    checkPort(port);
    if (reserved(port) || this.#bound.has(port)) {
      throw new PilotError(
        "conflict",
        `Port ${port} is already in use on this node`,
        "pick another port",
      );
    }
    const b = new PortBinding(port);
    this.#bound.set(port, b);
    return b;
  }

  /** Releases a binding. */
  release(b: PortBinding): void {
    if (this.#bound.get(b.port) === b) this.#bound.delete(b.port);
  }

  /** The binding of a port, if any. */
  get(port: number): PortBinding | undefined {
    return this.#bound.get(port);
  }
}
