import assert from "node:assert/strict";
import { STREAM_HYSTART } from "../src/constants.ts";
import type { AckEvent } from "../src/stream/congestion.ts";
import { HyStart, type HyStartVerdict } from "../src/stream/hystart.ts";
import { NewReno } from "../src/stream/new_reno.ts";

/**
 * Drives rounds: each round's first ACK acknowledges everything sent before
 * it (SND.UNA reaches the round's end), and new data is sent meanwhile.
 */
class Rounds {
  una = 0;
  nxt = 0;
  readonly h = new HyStart();

  /** One round of ACKs with these RTT samples (-1: an ACK that timed nothing). */
  round(rtts: number[]): HyStartVerdict[] {
    const start = this.nxt;
    this.nxt += 100_000;
    return rtts.map((rtt, i) => this.h.onAck(start + i, this.nxt, rtt));
  }
}

const samples = (ms: number, n: number = STREAM_HYSTART.rttSamples) => Array(n).fill(ms);

Deno.test("HyStart++ leaves slow start alone while the round trip stays flat", () => {
  const r = new Rounds();
  for (let i = 0; i < 30; i++) {
    assert.deepEqual(new Set(r.round(samples(10 + (i % 2) * 3.9))), new Set(["slow_start"]));
  }
  assert.equal(r.h.growthDivisor, 1);
});

Deno.test("HyStart++ enters CSS at the sample that shows the rise, then ends slow start after CSS_ROUNDS rounds", () => {
  const r = new Rounds();
  r.round(samples(10));
  // Threshold max(4, min(10 / 8, 16)) = 4 ms: 14 ms is a rise, once 8 samples say so.
  const v = r.round(samples(14));
  assert.deepEqual(v, [...samples(0, 7).map(() => "slow_start"), "css"]);
  assert.equal(r.h.inCss, true);
  assert.equal(r.h.growthDivisor, STREAM_HYSTART.cssGrowthDivisor);
  for (let i = 1; i < STREAM_HYSTART.cssRounds; i++) {
    assert.deepEqual(new Set(r.round(samples(14))), new Set(["css"]), `CSS round ${i}`);
  }
  assert.equal(r.round(samples(14))[0], "exit");
});

Deno.test("HyStart++'s threshold is an eighth of the last round's minimum, within 4 and 16 ms", () => {
  const rise = (base: number, to: number) => {
    const r = new Rounds();
    r.round(samples(base));
    return r.round(samples(to)).at(-1);
  };
  assert.equal(rise(10, 13.9), "slow_start"); // at least 4 ms
  assert.equal(rise(10, 14), "css");
  assert.equal(rise(80, 89.9), "slow_start"); // 80 / 8 = 10 ms
  assert.equal(rise(80, 90), "css");
  assert.equal(rise(400, 415.9), "slow_start"); // at most 16 ms
  assert.equal(rise(400, 416), "css");
});

Deno.test("HyStart++ judges only rounds with enough RTT samples, and only samples count", () => {
  const r = new Rounds();
  r.round(samples(10));
  const few = STREAM_HYSTART.rttSamples - 1;
  assert.deepEqual(new Set(r.round([...samples(100, few), -1, -1, -1])), new Set(["slow_start"]));
  // A round with too few samples is not judged, but its minimum is the next
  // round's baseline: 105 ms is no rise over 100 (threshold 12.5), though it is over 10.
  assert.equal(r.round(samples(105)).at(-1), "slow_start");
});

Deno.test("HyStart++ resumes slow start when the round trip falls back below the CSS baseline", () => {
  const r = new Rounds();
  r.round(samples(10));
  assert.equal(r.round(samples(14)).at(-1), "css");
  assert.equal(r.round(samples(13.5)).at(-1), "slow_start");
  assert.equal(r.h.growthDivisor, 1);
  // A later rise is judged afresh against the round before it.
  assert.equal(r.round(samples(17.5)).at(-1), "css");
});

Deno.test("NewReno grows a quarter as fast in CSS, ends the first slow start with ssthresh = cwnd, and uses HyStart++ only once", () => {
  const mss = 1000;
  const cc = new NewReno({ mss, maxWindow: 1 << 30 });
  let una = 0;
  let nxt = 0;
  const ack = (rtt: number, first: boolean): void => {
    if (first) nxt += 50_000;
    const e: AckEvent = {
      acked: first ? 0 : mss,
      una: first ? una : ++una,
      flight: nxt - una,
      limited: true,
      highSeq: nxt,
      rtt,
    };
    if (first) una = e.una;
    cc.onAckReceived(e);
  };
  const round = (rtt: number) => {
    una = nxt;
    ack(-1, true);
    for (let i = 0; i < STREAM_HYSTART.rttSamples; i++) ack(rtt, false);
  };
  round(10);
  const before = cc.cwnd;
  round(14); // the 7th sample's ACK still grows by a whole SMSS; the 8th starts CSS
  assert.equal(cc.cwnd, before + 7 * mss + mss / 4);
  assert.equal(cc.slowStart, true);
  for (let i = 1; i < STREAM_HYSTART.cssRounds; i++) round(14);
  assert.equal(cc.slowStart, true);
  una = nxt;
  ack(14, true);
  assert.equal(cc.slowStart, false);
  assert.equal(cc.ssthresh, cc.cwnd);
  // After a timeout the next slow start runs to ssthresh whatever the RTT does.
  cc.onRetransmissionTimeout({ una, flight: 400 * mss, highSeq: nxt });
  assert.equal(cc.cwnd, mss);
  round(10);
  const grown = cc.cwnd;
  round(40);
  assert.equal(cc.cwnd, grown + STREAM_HYSTART.rttSamples * mss);
});
