/**
 * The echo service on virtual port 7: answers each datagram with the same
 * bytes, for diagnostics (ping, throughput). Trusted peers only: the gate in
 * the session layer drops everything else before it gets here.
 *
 * @module
 */
import { PORT_ECHO } from "../constants.ts";
import type { Connection } from "../stream/mod.ts";
import type { PortService } from "./port_service.ts";

/** Echoes a stream back to its sender until it finishes, then finishes too. */
export async function echoStream(conn: Connection): Promise<void> {
  try {
    for (;;) {
      const chunk = await conn.read();
      if (chunk === null) break;
      await conn.write(chunk);
    }
    await conn.close();
  } catch {
    conn.reset("echo failed");
  }
}

/** Creates the echo service. */
export function echoService(): PortService {
  return {
    port: PORT_ECHO,
    name: "echo",
    async onDatagram(packet, ctx) {
      await ctx.reply(packet.payload);
    },
  };
}
