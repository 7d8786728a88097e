/**
 * Endpoint text: `IP:PORT`, `[IPv6]:PORT`, `udp://HOST:PORT` and `HOST:PORT`
 * with a DNS name. The boundary with the other things a user types (an
 * address, with or without a virtual port, a hostname, a fingerprint, a key)
 * is pinned here: none of them is ever taken for an endpoint.
 */
import assert from "node:assert/strict";
import {
  formatEndpoint,
  looksLikeEndpoint,
  parseEndpoint,
  relayEndpoint,
  relayPathOf,
  resolveEndpoint,
} from "../src/discovery/endpoint.ts";
import { parseAddress } from "../src/identity/address.ts";
import { classifyPeer } from "../src/discovery/resolver.ts";
import { PilotError } from "../src/errors.ts";

function refusal(text: string): PilotError {
  try {
    parseEndpoint(text);
  } catch (e) {
    if (e instanceof PilotError) return e;
    throw e;
  }
  throw new Error(`parseEndpoint(${JSON.stringify(text)}) did not throw`);
}

Deno.test("parseEndpoint() takes HOST:PORT with a DNS name, lower-cased", () => {
  assert.deepEqual(parseEndpoint("worker.example.com:4000"), {
    host: "worker.example.com",
    port: 4000,
  });
  assert.deepEqual(parseEndpoint("localhost:4000"), { host: "localhost", port: 4000 });
  assert.deepEqual(parseEndpoint("Worker-7.Example.COM:1"), {
    host: "worker-7.example.com",
    port: 1,
  });
  assert.deepEqual(parseEndpoint("udp://worker.example.com:65535"), {
    host: "worker.example.com",
    port: 65535,
  });
});

Deno.test("parseEndpoint() still takes IP:PORT and [IPv6]:PORT", () => {
  assert.deepEqual(parseEndpoint("127.0.0.1:7440"), { host: "127.0.0.1", port: 7440 });
  assert.deepEqual(parseEndpoint("[::1]:7440"), { host: "::1", port: 7440 });
});

Deno.test("looksLikeEndpoint() is true for DNS names and IPs with a port", () => {
  for (
    const t of [
      "worker.example.com:4000",
      "localhost:4000",
      "10.0.0.1:7440",
      "[::1]:7440",
      "udp://x.example:1",
    ]
  ) {
    assert.equal(looksLikeEndpoint(t), true, t);
  }
});

Deno.test("looksLikeEndpoint() is false for addresses, hostnames, fingerprints and keys", () => {
  for (
    const t of [
      "3fa2.09c1.77e4",
      "3FA209C177E4",
      "3fa2.09c1.77e4:1001",
      "3fa209c177e4:1001",
      "worker-7",
      "data-processor-node",
      "abcd-efgh-ijkl-mnop-qrst-uvwx-yz23-4567",
      "ab".repeat(32),
    ]
  ) {
    assert.equal(looksLikeEndpoint(t), false, t);
  }
});

Deno.test("classifyPeer() keeps addresses, hostnames and keys apart from DNS endpoints", () => {
  assert.equal(classifyPeer("worker.example.com:4000").kind, "endpoint");
  assert.equal(classifyPeer("localhost:4000").kind, "endpoint");
  assert.equal(classifyPeer("3fa2.09c1.77e4").kind, "address");
  assert.equal(classifyPeer("localhost").kind, "hostname");
  assert.equal(classifyPeer("ab".repeat(32)).kind, "key");
  // An address with a virtual port is not a UDP endpoint.
  assert.throws(() => classifyPeer("3fa2.09c1.77e4:1001"), PilotError);
});

Deno.test("parseEndpoint() refuses host:0, host:65536 and host: with the one-line error and hint", () => {
  for (const t of ["host:0", "host:65536", "host:", "worker.example.com:99999", "host:http"]) {
    const e = refusal(t);
    assert.equal(e.code, "invalid_argument", t);
    assert.match(e.message, /^Cannot parse endpoint ".*": port must be 1-65535$/, t);
    assert.match(e.hint ?? "", /HOST:PORT/, t);
  }
});

Deno.test("looksLikeEndpoint() sends a bad port to parseEndpoint's error, not to 'cannot parse peer'", () => {
  for (const t of ["host:0", "host:65536", "host:"]) {
    assert.equal(looksLikeEndpoint(t), true, t);
    assert.match(
      (() => {
        try {
          classifyPeer(t);
        } catch (e) {
          return (e as Error).message;
        }
        return "";
      })(),
      /port must be 1-65535/,
      t,
    );
  }
});

Deno.test("parseEndpoint() refuses an address used as a host, and malformed names", () => {
  assert.match(refusal("3fa2.09c1.77e4:1001").message, /is a Pilot address/);
  assert.match(refusal("bad_name.example:80").message, /not an IP address or DNS name/);
  assert.match(refusal("-x.example:80").message, /not an IP address or DNS name/);
  assert.match(refusal("a..b:80").message, /not an IP address or DNS name/);
  assert.match(refusal("1.2.3.999:80").message, /not an IP address or DNS name/);
  assert.match(refusal(`${"a".repeat(64)}.example:80`).message, /not an IP address or DNS name/);
});

Deno.test("a relay path is an endpoint no one can type: port 0, text relay/VIA/PEER, one per peer", async () => {
  const via = parseAddress("4e34.14b2.799b");
  const peer = parseAddress("c054.4de9.c4a1");
  const e = relayEndpoint({ via, peer });
  assert.equal(formatEndpoint(e), "relay/4e34.14b2.799b/c054.4de9.c4a1");
  assert.deepEqual(relayPathOf(e), { via, peer });
  assert.notEqual(formatEndpoint(relayEndpoint({ via, peer: via })), formatEndpoint(e));
  assert.equal(relayPathOf({ hostname: "198.18.0.1", port: 4000 }), null);
  assert.equal(relayPathOf({ hostname: "relay/nonsense", port: 0 }), null);
  // Resolving passes it through (no DNS), and no typed text parses to it.
  assert.deepEqual(await resolveEndpoint({ host: e.hostname, port: e.port }), e);
  assert.equal(refusal(`${e.hostname}:0`).code, "invalid_argument");
  assert.equal(refusal("relay:0").code, "invalid_argument");
});
