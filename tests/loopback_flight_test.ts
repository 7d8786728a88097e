import assert from "node:assert/strict";
import { DEFAULT_RECEIVE_BUFFER, LOOPBACK_DATAGRAM, LOOPBACK_FLIGHT } from "../src/constants.ts";
import { loopbackFlight } from "../src/daemon/streams.ts";
import { systemReceiveBuffer } from "../src/daemon/udp.ts";

Deno.test("loopback streams keep in flight what the receiving socket holds: three datagrams by default, in proportion beyond, never fewer than two", () => {
  assert.equal(loopbackFlight(DEFAULT_RECEIVE_BUFFER), LOOPBACK_FLIGHT);
  assert.equal(LOOPBACK_FLIGHT, 3 * LOOPBACK_DATAGRAM);
  // 4 MiB holds 59 datagrams at the default's 3 per 212,992 bytes.
  assert.equal(loopbackFlight(4 * 1024 * 1024), 59 * LOOPBACK_DATAGRAM);
  assert.equal(loopbackFlight(DEFAULT_RECEIVE_BUFFER - 1), 2 * LOOPBACK_DATAGRAM);
  assert.equal(loopbackFlight(4096), 2 * LOOPBACK_DATAGRAM);
});

Deno.test("the system's socket receive buffer is read from rmem_default, and falls back to Linux's default when it cannot be", () => {
  assert.equal(systemReceiveBuffer(() => "4194304\n"), 4_194_304);
  for (const bad of ["", "0", "-5", "12.5", "lots", "9007199254740993"]) {
    assert.equal(systemReceiveBuffer(() => bad), DEFAULT_RECEIVE_BUFFER, JSON.stringify(bad));
  }
  assert.equal(
    systemReceiveBuffer(() => {
      throw new Deno.errors.NotFound("no /proc here");
    }),
    DEFAULT_RECEIVE_BUFFER,
  );
  // On this machine it reads something positive either way.
  assert.ok(systemReceiveBuffer() > 0);
});
