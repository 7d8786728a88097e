import assert from "node:assert/strict";
import {
  type AckEvent,
  type CongestionControl,
  initialWindow,
  type LossEvent,
} from "../src/stream/congestion.ts";
import { NewReno } from "../src/stream/new_reno.ts";
import { STREAM_ACK_BYTES } from "../src/constants.ts";
import type { ConnectionStats } from "../src/stream/connection.ts";
import { SEG_ACK } from "../src/wire/stream_segment.ts";
import { openPair, patternBytes, readAll, sha256, SimLink, track, writeAll } from "./_sim_link.ts";

const MSS = 1000;
const MIB = 1024 * 1024;

Deno.test("the initial window follows RFC 6928", () => {
  assert.equal(initialWindow(1328), 13_280);
  assert.equal(initialWindow(1000), 10_000);
  assert.equal(initialWindow(5000), 14_600);
  assert.equal(initialWindow(60_000), 120_000);
  assert.equal(new NewReno({ mss: 1328, maxWindow: MIB }).cwnd, 13_280);
});

Deno.test("NewReno slow start grows cwnd by the bytes acknowledged, at most max(2 SMSS, STREAM_ACK_BYTES) per ACK", () => {
  const cc = new NewReno({ mss: MSS, maxWindow: MIB });
  assert.equal(cc.slowStart, true);
  cc.onAck(2 * MSS, true);
  assert.equal(cc.cwnd, 12 * MSS);
  // Byte counting (RFC 3465) with L = one stretch ACK's worth: 10 SMSS here.
  assert.equal(STREAM_ACK_BYTES, 10 * MSS);
  cc.onAck(25 * MSS, true);
  assert.equal(cc.cwnd, 22 * MSS);
  cc.onAck(500, true);
  assert.equal(cc.cwnd, 22 * MSS + 500);
  cc.onAck(2 * MSS, false); // application-limited: no growth
  assert.equal(cc.cwnd, 22 * MSS + 500);
  // Segments larger than a stretch ACK: L = 2 SMSS, as the RFC has it.
  const big = new NewReno({ mss: 60_000, maxWindow: 100 * MIB });
  big.onAck(5 * 60_000, true);
  assert.equal(big.cwnd, initialWindow(60_000) + 2 * 60_000);
});

Deno.test("NewReno congestion avoidance adds one SMSS per cwnd of acknowledged bytes", () => {
  const cc = new NewReno({ mss: MSS, maxWindow: MIB });
  cc.enterRecovery(40 * MSS, 100);
  cc.exitRecovery();
  assert.equal(cc.cwnd, 20 * MSS);
  assert.equal(cc.slowStart, false);
  for (let i = 0; i < 19; i++) cc.onAck(MSS, true);
  assert.equal(cc.cwnd, 20 * MSS);
  cc.onAck(MSS, true);
  assert.equal(cc.cwnd, 21 * MSS);
  for (let i = 0; i < 21; i++) cc.onAck(MSS, true);
  assert.equal(cc.cwnd, 22 * MSS);
});

Deno.test("NewReno halves on loss once per window and exits recovery at the recovery point", () => {
  const cc = new NewReno({ mss: MSS, maxWindow: MIB });
  cc.cwnd = 64 * MSS;
  assert.equal(cc.canEnterRecovery(1), true);
  cc.enterRecovery(60 * MSS, 500_000);
  assert.equal(cc.ssthresh, 30 * MSS);
  assert.equal(cc.cwnd, 30 * MSS);
  assert.equal(cc.inRecovery, true);
  // No growth and no second reduction inside the same window.
  cc.onAck(10 * MSS, true);
  assert.equal(cc.cwnd, 30 * MSS);
  assert.equal(cc.canEnterRecovery(400_000), false);
  cc.exitRecovery();
  assert.equal(cc.inRecovery, false);
  assert.equal(cc.cwnd, 30 * MSS); // ssthresh: the pacer spreads it, whatever the flight
  assert.equal(cc.canEnterRecovery(499_999), false);
  assert.equal(cc.canEnterRecovery(500_000), true);
  // ssthresh never drops below 2 SMSS.
  cc.enterRecovery(MSS, 700_000);
  assert.equal(cc.ssthresh, 2 * MSS);
  assert.equal(cc.recoveries, 2);
});

Deno.test("NewReno collapses to one segment on a timeout and forbids fast recovery until the recovery point", () => {
  const cc = new NewReno({ mss: MSS, maxWindow: MIB });
  cc.cwnd = 50 * MSS;
  cc.onTimeout(50 * MSS, 90_000);
  assert.equal(cc.cwnd, MSS);
  assert.equal(cc.ssthresh, 25 * MSS);
  assert.equal(cc.timeouts, 1);
  assert.equal(cc.canEnterRecovery(89_000), false);
  assert.equal(cc.canEnterRecovery(90_000), true);
  cc.onAck(MSS, true);
  assert.equal(cc.cwnd, 2 * MSS); // slow start again
});

Deno.test("NewReno never grows cwnd past its maximum window", () => {
  const cc = new NewReno({ mss: MSS, maxWindow: 12 * MSS });
  for (let i = 0; i < 10; i++) cc.onAck(2 * MSS, true);
  assert.equal(cc.cwnd, 12 * MSS);
  cc.onIdleRestart();
  assert.equal(cc.cwnd, 10 * MSS);
});

Deno.test("a connection's cwnd doubles per round trip in slow start, halves on a loss, and grows linearly after recovery", async () => {
  const rtt = 100;
  let dataSegments = 0;
  let dropAt = Infinity;
  const link = new SimLink({
    mss: MSS,
    link: { delayMs: rtt / 2 },
    limits: { sendBuffer: 8 * MIB, receiveBuffer: 8 * MIB, peerBuffer: 16 * MIB },
    drop: (p) =>
      p.from === "a" && p.segment.flags === SEG_ACK && p.segment.data.length > 0 &&
      ++dataSegments === dropAt,
  });
  const { client, server } = await openPair(link);
  const got = readAll(server);
  const sent = track(writeAll(client, patternBytes(8 * MIB, 1), { chunk: MIB }));
  const start = link.clock.now;
  const byRtt: ConnectionStats[] = [];
  const sample = () => {
    while (link.clock.now >= start + byRtt.length * rtt) byRtt.push(client.stats());
  };
  // Slow start: five round trips, no loss.
  await link.run(() => {
    sample();
    return byRtt.length > 5;
  });
  // The SYN's round trip paces the first windows over half a round trip
  // each, so their ACKs (and the growth they bring) come later; from the
  // third round trip on, the window doubles per round trip again.
  for (let i = 1; i <= 5; i++) {
    const ratio = byRtt[i]!.cwnd / byRtt[i - 1]!.cwnd;
    const least = i < 3 ? 1.15 : 1.75;
    assert.ok(ratio > least && ratio <= 2.05, `cwnd ×${ratio.toFixed(2)} in round trip ${i}`);
  }
  // One segment lost: fast recovery halves the window.
  dropAt = dataSegments + 1;
  let before = client.stats();
  let during: ConnectionStats | undefined;
  await link.run(() => {
    const s = client.stats();
    if (s.inRecovery) during ??= s;
    else if (during === undefined) before = s;
    return during !== undefined && !s.inRecovery;
  });
  const after = client.stats();
  assert.equal(after.fastRecoveries, 1);
  assert.equal(after.timeouts, 0);
  assert.equal(after.retransmits, 1);
  // ssthresh = FlightSize / 2 when the loss is found: half the window then.
  assert.ok(
    Math.abs(during!.ssthresh! - before.cwnd / 2) <= 4 * MSS,
    `ssthresh ${during!.ssthresh} vs cwnd ${before.cwnd} before the loss`,
  );
  assert.equal(during!.cwnd, during!.ssthresh);
  assert.ok(after.cwnd <= after.ssthresh! && after.cwnd >= after.ssthresh! - MSS);
  // Congestion avoidance: about one SMSS per round trip.
  const ca0 = client.stats().cwnd;
  const t0 = link.clock.now;
  await link.run(() => link.clock.now >= t0 + 5 * rtt);
  const grown = client.stats().cwnd - ca0;
  assert.ok(grown >= 3 * MSS && grown <= 7 * MSS, `grew ${grown} bytes in 5 round trips`);
  await link.run(() => sent.settled && got.result.ended);
});

/** A controller with a fixed window that counts the events it is given. */
class FixedWindow implements CongestionControl {
  readonly ssthresh = Infinity;
  readonly inRecovery = false;
  recoveries = 0;
  timeouts = 0;
  acks = 0;
  idleRestarts = 0;
  constructor(readonly cwnd: number) {}
  onAckReceived(ack: AckEvent): void {
    assert.ok(ack.flight >= 0 && ack.acked >= 0);
    this.acks++;
  }
  onLossDetected(_loss: LossEvent): boolean {
    this.recoveries++;
    return true;
  }
  onRetransmissionTimeout(_loss: LossEvent): void {
    this.timeouts++;
  }
  onIdleRestart(): void {
    this.idleRestarts++;
  }
}

Deno.test("a connection sends within the window of the congestion controller its mux was given, and reports losses to it", async () => {
  const made: FixedWindow[] = [];
  const link = new SimLink({
    mss: MSS,
    link: { delayMs: 20, loss: 0.05 },
    congestion: (o) => {
      assert.equal(o.mss, MSS);
      const cc = new FixedWindow(3 * o.mss);
      made.push(cc);
      return cc;
    },
  });
  const { client, server } = await openPair(link);
  const got = readAll(server);
  const data = patternBytes(300_000, 5);
  const sent = track(writeAll(client, data));
  let most = 0;
  await link.run(() => {
    most = Math.max(most, client.stats().bytesInFlight);
    return sent.settled && got.result.ended;
  });
  assert.equal(got.result.sha256, sha256(data));
  // The FIN's one sequence number is sent whatever cwnd says.
  assert.ok(most <= 3 * MSS + 1, `${most} bytes in flight with a window of ${3 * MSS}`);
  assert.ok(most > 2 * MSS, `${most} bytes in flight: the window was not used`);
  assert.equal(made.length, 2);
  const cc = made[0]!; // the client's: the server's is made when the SYN arrives
  assert.equal(client.stats().cwnd, 3 * MSS);
  assert.ok(cc.acks > 100, `${cc.acks} ACKs reported`);
  assert.ok(cc.recoveries > 0, "no loss reported");
  assert.equal(client.stats().fastRecoveries, cc.recoveries);
});
