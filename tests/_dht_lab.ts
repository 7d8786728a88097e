/**
 * Daemons on a private Mainline DHT on loopback (issue 10 item 4): a
 * bootstrap DHT node in this process, and public `--dht` daemons (no LAN,
 * no rendezvous) that join through it. `await using` stops them all.
 *
 * ```ts
 * await using lab = await privateDhtLab();
 * const worker = await lab.start(1, "data-processor-node");
 * ```
 *
 * @module
 */
import { PresenceDht } from "../src/discovery/dht.ts";
import { makeHome, TestNode } from "./_daemon_harness.ts";

/** A private DHT and the daemons started on it. */
export interface DhtLab extends AsyncDisposable {
  /** The bootstrap node (a DHT node in this process: lookups from the test). */
  bootstrap: PresenceDht;
  /** Starts a public `--dht` daemon with fixture `identity` claiming `hostname`. */
  start(identity: number, hostname: string): Promise<TestNode>;
}

/** Starts the bootstrap node of a private DHT. */
export async function privateDhtLab(): Promise<DhtLab> {
  const bootstrap = await PresenceDht.start({ host: "127.0.0.1", port: 0, bootstrap: [] });
  const config = {
    dht: true,
    lan: false,
    public: true,
    dht_bootstrap: [`127.0.0.1:${bootstrap.endpoint.port}`],
  };
  const nodes: TestNode[] = [];
  return {
    bootstrap,
    async start(identity, hostname) {
      const node = new TestNode(await makeHome({ identity, config }), { identity, hostname });
      nodes.push(node);
      await node.start();
      return node;
    },
    async [Symbol.asyncDispose]() {
      await Promise.allSettled(nodes.map((n) => n.stop()));
      await bootstrap.close();
    },
  };
}
