/**
 * The echo service on virtual port 7: answers each datagram with the same
 * bytes, for diagnostics (ping, throughput). Trusted peers only: the gate in
 * the session layer drops everything else before it gets here.
 *
 * @module
 */
import { PORT_ECHO } from "../constants.ts";
import type { PortService } from "./port_service.ts";

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
