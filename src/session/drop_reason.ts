/**
 * Why the session layer dropped a datagram: one closed set, so that the
 * counters `pilot info` shows under `drops` are a documented set. Each
 * refusal is counted once, by the first check that failed (docs/PROTOCOL.md
 * §5.3, §5.4); §5.11 lists this table, and a test keeps the two equal.
 *
 * @module
 */

/** Every drop reason of the session layer, with what it means. */
export const DROP_REASONS = {
  malformed: "the datagram is no valid outer frame",
  mac1: "stealth: message 1 without a valid mac1",
  cookie_sent: "message 1 answered with a cookie reply instead of message 2 (load or rate)",
  cookie_rate:
    "message 1 that would get a cookie, past the cookie-reply rate of its source or in all",
  duplicate_ephemeral: "message 1 reusing a half-open handshake's ephemeral key with other bytes",
  replayed_init: "message 1 whose ephemeral key was seen in the last 180 s",
  rate_limited: "over a per-source (proven address) or per-key handshake rate",
  half_open_full: "no room for another half-open handshake",
  work_budget: "the handshake work budget is spent for this source",
  handshakes_busy: "too many handshake computations in flight",
  bad_init: "message 1 failed Noise",
  bad_resp: "message 2 failed Noise",
  bad_final: "message 3 failed Noise",
  bad_key: "the peer's identity key is weak or malformed",
  bad_stamp: "the peer's address stamp does not verify",
  bad_binding: "the peer's identity signature does not cover its static key",
  bad_self: "the peer's self-description signature does not verify",
  unexpected_key: "the responder holds another key than expected",
  unexpected_address: "the responder holds another address than expected",
  unexpected_hostname: "the responder claims another hostname than expected",
  self: "the peer is this node itself",
  stale_resp: "message 2 for a session that is already established",
  stale_final:
    "message 3 for an established session that is not its exact repeat, or a repeat beyond the confirmations' rate",
  final_in_progress: "message 3 while another copy is being processed",
  final_failed: "a repeat of a message 3 that already failed",
  bad_cookie: "cookie reply whose echo does not match our message 1",
  cookie_ignored: "cookie reply after this message 1 already took one",
  unknown_index: "no handshake or session has the frame's receiver index",
  sessions_full: "the session table has no room for a new peer",
  old_static_key: "the peer's static-key serial is older than one it proved before",
  expired: "data for a session past its reject-after time",
  untrusted_rate: "an untrusted peer's data frame over its rate, dropped before decryption",
  replay: "data frame counter already seen or too old",
  busy: "too many decryptions (or ciphertext bytes) in flight for the session",
  auth: "data frame failed authentication",
  malformed_inner: "the decrypted inner packet is malformed",
  inner_address: "inner source or destination address is not the session's",
  not_trusted:
    "an untrusted peer's datagram to a port not open to strangers (444, and those the node opens)",
  not_trusted_stream: "an untrusted peer's stream segment (streams need trust, even to 444)",
  rekey_failed: "a rekey could not start",
} as const satisfies Record<string, string>;

/** One reason a datagram was dropped. */
export type DropReason = keyof typeof DROP_REASONS;

/** Counters of dropped datagrams, by reason (absent = 0). */
export type DropCounters = Partial<Record<DropReason, number>>;
