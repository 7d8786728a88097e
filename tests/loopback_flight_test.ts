import assert from "node:assert/strict";
import { DEFAULT_RECEIVE_BUFFER, LOOPBACK_DATAGRAM, LOOPBACK_FLIGHT } from "../src/constants.ts";
import { loopbackFlight } from "../src/daemon/streams.ts";
import { loopbackStreamBuffer, systemReceiveBuffer } from "../src/daemon/udp.ts";

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

Deno.test("a loopback stream counts on half of what any daemon on this machine gets without privilege, never more than this one got, never less than the default", () => {
  const D = DEFAULT_RECEIVE_BUFFER;
  const raised = (receive: number) => ({ receive, send: receive, raised: true });
  const max = (n: number) => () => `${n}\n`;
  // rmem_max 4 MiB: asking for 1 MiB gets 2 MiB (Linux doubles it); a stream may fill half.
  assert.equal(loopbackStreamBuffer(raised(2 * 1024 * 1024), D, max(4 * 1024 * 1024)), 1024 * 1024);
  // Forced past Linux's usual rmem_max of 212,992: a peer without CAP_NET_ADMIN gets 425,984.
  assert.equal(loopbackStreamBuffer(raised(2 * 1024 * 1024), D, max(212_992)), 212_992);
  // This daemon got less than anyone could: its own is the bound.
  assert.equal(loopbackStreamBuffer(raised(1024 * 1024), D, max(4 * 1024 * 1024)), 512 * 1024);
  // Never below the system's default, whatever the halves say.
  assert.equal(loopbackStreamBuffer(raised(300_000), 262_144, max(4 * 1024 * 1024)), 262_144);
  // Not raised here, or the maximum unreadable: nothing says a peer's was.
  const notRaised = { receive: D, send: null, raised: false, why: "no --allow-ffi" };
  assert.equal(loopbackStreamBuffer(notRaised, D, max(4 * 1024 * 1024)), D);
  assert.equal(
    loopbackStreamBuffer(raised(2 * 1024 * 1024), D, () => {
      throw new Deno.errors.NotFound("no /proc here");
    }),
    D,
  );
  assert.equal(loopbackStreamBuffer(raised(2 * 1024 * 1024), D, () => "lots"), D);
});
