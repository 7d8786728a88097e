/**
 * The daemon's UDP socket asks the kernel for larger buffers through the C
 * library (`daemon/socket_buffers.ts`); without the permission or the
 * privilege it keeps the defaults and says why.
 */
import assert from "node:assert/strict";
import { DEFAULT_RECEIVE_BUFFER, UDP_SOCKET_BUFFER } from "../src/constants.ts";
import {
  DEFAULT_LARGE_ENOUGH,
  raises,
  raiseSocketBuffers,
  readSocketBuffers,
} from "../src/daemon/socket_buffers.ts";
import { systemReceiveBuffer, UdpSocket } from "../src/daemon/udp.ts";

const LINUX = Deno.build.os === "linux";

/** Linux's cap on SO_RCVBUF without CAP_NET_ADMIN, or null where it cannot be read. */
function rmemMax(): number | null {
  try {
    return Number(Deno.readTextFileSync("/proc/sys/net/core/rmem_max").trim());
  } catch {
    return null;
  }
}

Deno.test({
  name:
    "UdpSocket.open() raises the receive buffer as far as the system allows, and no other socket's",
  ignore: !LINUX, // the descriptor search and the sizes below are Linux's; macOS is untested here
  fn: () => {
    const other = UdpSocket.open({ hostname: "127.0.0.1", port: 0 }, 0);
    const udp = UdpSocket.open({ hostname: "127.0.0.1", port: 0 });
    try {
      const b = udp.buffers;
      const max = rmemMax();
      // Linux keeps twice what was set (its bookkeeping share); as root, FORCE ignores the maximum.
      const expected = Deno.uid() === 0
        ? 2 * UDP_SOCKET_BUFFER
        : 2 * Math.min(UDP_SOCKET_BUFFER, max ?? UDP_SOCKET_BUFFER);
      assert.equal(b.receive, Math.max(expected, systemReceiveBuffer()), JSON.stringify(b));
      assert.equal(b.raised, b.receive > systemReceiveBuffer());
      assert.equal(b.why === undefined, b.raised, JSON.stringify(b));
      // What the kernel says now is what was reported; the other socket kept its default.
      assert.deepEqual(readSocketBuffers(udp.local), { receive: b.receive, send: b.send });
      const untouched = readSocketBuffers(other.local);
      assert.ok(typeof untouched !== "string", untouched as string);
      assert.equal(untouched.receive, systemReceiveBuffer());
      assert.equal(other.buffers.raised, false);
      assert.equal(other.buffers.why, "not asked for");
    } finally {
      udp.close();
      other.close();
    }
  },
});

Deno.test("UdpSocket.open() keeps the default buffers, and says why, without --allow-ffi", async () => {
  const script = `
    import { UdpSocket } from ${
    JSON.stringify(new URL("../src/daemon/udp.ts", import.meta.url).href)
  };
    const udp = UdpSocket.open({ hostname: "127.0.0.1", port: 0 });
    console.log(JSON.stringify(udp.buffers));
    udp.close();
  `;
  // `deno eval` would grant every permission: a file run with all but --allow-ffi.
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  let out: Deno.CommandOutput;
  try {
    await Deno.writeTextFile(file, script);
    out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--unstable-net", "--allow-net", "--allow-read", "--no-prompt", file],
      stdout: "piped",
      stderr: "piped",
    }).output();
  } finally {
    await Deno.remove(file);
  }
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  const buffers = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.deepEqual(buffers, {
    receive: LINUX ? systemReceiveBuffer() : DEFAULT_RECEIVE_BUFFER,
    send: null,
    raised: false,
    why: LINUX ? "the program runs without --allow-ffi" : `not supported on ${Deno.build.os}`,
  });
});

Deno.test("a buffer is only ever set larger: asking for less than a socket has keeps what it has", () => {
  // Linux reports twice what was set.
  assert.equal(raises(212_992, 1024 * 1024, 2), true);
  assert.equal(raises(2 * 1024 * 1024, 1024 * 1024, 2), false);
  assert.equal(raises(4 * 1024 * 1024, 1024 * 1024, 2), false);
  assert.equal(raises(2 * 1024 * 1024 - 1, 1024 * 1024, 2), true);
  // macOS reports what was set; an unreadable size is raised.
  assert.equal(raises(1024 * 1024, 1024 * 1024, 1), false);
  assert.equal(raises(null, 1024 * 1024, 1), true);
});

Deno.test({
  name:
    "raiseSocketBuffers() never shrinks a socket's buffer (a system default above 1 MiB, net.core.rmem_default, is kept)",
  ignore: !LINUX, // the descriptor search is Linux's here; macOS is untested
  fn: () => {
    const udp = UdpSocket.open({ hostname: "127.0.0.1", port: 0 }, 0);
    try {
      const defaultReceive = systemReceiveBuffer();
      // Stands in for a larger system default: the socket is first raised past what the daemon asks for.
      const larger = raiseSocketBuffers(udp.local, {
        bytes: 2 * UDP_SOCKET_BUFFER,
        defaultReceive,
      });
      const again = raiseSocketBuffers(udp.local, {
        bytes: UDP_SOCKET_BUFFER,
        defaultReceive: larger.receive,
      });
      assert.equal(again.receive, larger.receive, JSON.stringify({ larger, again }));
      assert.equal(again.send, larger.send);
      assert.deepEqual(readSocketBuffers(udp.local), {
        receive: larger.receive,
        send: larger.send,
      });
      if (larger.receive >= 2 * UDP_SOCKET_BUFFER) {
        assert.equal(again.raised, false);
        assert.equal(again.why, DEFAULT_LARGE_ENOUGH);
      }
    } finally {
      udp.close();
    }
  },
});
