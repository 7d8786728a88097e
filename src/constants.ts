/**
 * Protocol constants: ports, timers, limits. One file so that every number a
 * reviewer may want to check against the design lives in one place.
 *
 * Timers follow WireGuard's table (seconds unless named otherwise).
 */
import denoJson from "../deno.json" with { type: "json" };

/** Noise prologue; a protocol version change changes it (no silent downgrade). */
export const PROLOGUE = "pilot/1";
/** Noise protocol name implemented by the tunnel. */
export const NOISE_PROTOCOL = "Noise_XX_25519_AESGCM_SHA256";

/** Domain label hashed with the Ed25519 key and stamp to derive an address. */
export const ADDRESS_LABEL = "pilot/address/v1";
/** Domain label of the identity key's signature over the static X25519 key. */
export const STATIC_KEY_LABEL = "pilot/static-key/v1";
/** Domain label of the key that keys mac1 on handshake message 1. */
export const MAC1_LABEL = "pilot/mac1/v1";
/** Domain label of the cookie MAC (mac2). */
export const COOKIE_LABEL = "pilot/cookie/v1";

/** Virtual port of the trust handshake service: the only port untrusted peers reach. */
export const PORT_TRUST = 444;
/** Virtual port of the echo service. */
export const PORT_ECHO = 7;
/** Virtual port of the stdio service. */
export const PORT_STDIO = 1000;
/** Virtual port of the messages service (messages, files, replies). */
export const PORT_MESSAGES = 1001;
/** Virtual port of the pub/sub service. */
export const PORT_PUBSUB = 1002;
/** Virtual port of the rendezvous service (issue 9): datagrams only, open to strangers on a rendezvous. */
export const PORT_RENDEZVOUS = 445;
/** Virtual port of path messages between trusted peers (hole punching). */
export const PORT_PATH = 446;
/** Virtual port of durable tasks (issue 11): streams of the messages protocol, trusted peers only. */
export const PORT_TASKS = 1003;
/** Virtual port of mailboxes at a rendezvous (issue 10): streams, open to strangers on a rendezvous. */
export const PORT_MAILBOX = 447;

/** Initiator starts a new handshake once a session is this old (ms). */
export const REKEY_AFTER_TIME_MS = 120_000;
/** Initiator starts a new handshake after this many packets sent. */
export const REKEY_AFTER_MESSAGES = 2 ** 22;
/** A session is unusable once this old (ms). */
export const REJECT_AFTER_TIME_MS = 180_000;
/** A session is unusable after this many packets in one direction. */
export const REJECT_AFTER_MESSAGES = 2 ** 48;
/** Handshake retransmission interval (ms), plus jitter. */
export const REKEY_TIMEOUT_MS = 5_000;
/** Upper bound of the random jitter added to each handshake retransmission (ms). */
export const REKEY_TIMEOUT_JITTER_MS = 333;
/** Give up a handshake attempt after this long (ms). */
export const REKEY_ATTEMPT_TIME_MS = 90_000;
/** Send a keepalive when nothing was sent for this long after receiving (ms). */
export const KEEPALIVE_TIMEOUT_MS = 10_000;
/** Persistent keepalive interval where NAT may be involved (ms). */
export const PERSISTENT_KEEPALIVE_MS = 25_000;
/** How long the previous session's keys stay valid for packets in flight (ms). */
export const PREVIOUS_SESSION_GRACE_MS = 10_000;
/**
 * A session's transport key unused this long (ms) is released from WebCrypto
 * (a CryptoKey holds about 2 KB of heap) and kept as its 32 bytes; the next
 * frame imports it again (about 15 µs).
 */
export const SESSION_KEY_IDLE_MS = 10_000;

/** Replay window size in packets (per direction). */
export const REPLAY_WINDOW = 8192;
/** Crypto operations in flight per session; well under the replay window. */
export const MAX_INFLIGHT_DECRYPTS = 256;
/**
 * Ciphertext bytes being decrypted at once per session, beside the count:
 * 256 of the largest datagrams would hold 16 MiB, and three times that
 * with WebCrypto's copy of each input and its output. 1 MiB is 17
 * loopback datagrams (a loopback stream keeps 3 in flight) or 750 of 1400
 * bytes (the count binds first). 4 MiB let a trusted peer's flood of 60 KB
 * datagrams keep 70 decryptions queued on the runtime's crypto threads
 * (`deno task floods --only pinned_segments`: RSS 22.6 MB over start after
 * it, 13.7 and 16.8 with 1 MiB).
 */
export const MAX_INFLIGHT_DECRYPT_BYTES = 1024 * 1024;

/** Largest UDP payload the daemon sends on real networks. */
export const MAX_DATAGRAM = 1400;
/** Largest UDP datagram the daemon accepts. */
export const MAX_RECEIVE_DATAGRAM = 65_535;
/** Handshake message 1 frames are padded to exactly this size, at least message 2 (anti-amplification). */
export const MSG1_SIZE = 384;

/** Hard cap on live sessions. */
export const MAX_SESSIONS = 4096;
/** Sessions kept back for trusted peers once the table is nearly full. */
export const RESERVED_TRUSTED_SESSIONS = 512;
/** Hard cap on half-open responder handshakes. */
export const MAX_PENDING_HANDSHAKES = 1024;
/** Handshake message 1 per source IP and port that proved its address (mac2): bucket size and refill per second. */
export const HANDSHAKE_RATE_PER_SOURCE = { burst: 20, perSecond: 10 } as const;
/** Completed handshakes per peer key: bucket size and refill per second. */
export const HANDSHAKE_RATE_PER_KEY = { burst: 10, perSecond: 2 } as const;
/**
 * Cookie replies per source endpoint (bucket size, refill per second) and in
 * all: answering is cheap but not free (a MAC), so a message 1 flood past
 * these is dropped (`cookie_rate`) before any MAC is computed.
 */
export const COOKIE_REPLY_RATE_PER_SOURCE = { burst: 10, perSecond: 5 } as const;
/** All cookie replies together (bucket size, refill per second). */
export const COOKIE_REPLY_RATE_TOTAL = { burst: 2_000, perSecond: 2_000 } as const;
/** Half-open handshakes above which the responder demands cookies (default). */
export const COOKIE_LOAD_THRESHOLD = 256;
/** Lifetime of a cookie secret (ms). */
export const COOKIE_SECRET_LIFETIME_MS = 120_000;

/** Address stamp difficulty: zero bits after the 48 address bits. */
export const STAMP_ZERO_BITS = 20;

/** Control API version (additive changes only within one version). */
export const API_VERSION = 1;
/** Program version, reported by the daemon and `pilot version`: deno.json's, written only there. */
export const VERSION: string = denoJson.version;

/** Size at which the daemon's `daemon.log` rotates (bytes). */
export const LOG_ROTATE_BYTES = 10 * 1024 * 1024;
/** Rotated log files kept beside `daemon.log` (`daemon.log.1` … `.3`). */
export const LOG_KEEP = 3;
/** How often the daemon logs one summary of the datagrams it dropped, when it dropped any (ms). */
export const DROP_SUMMARY_MS = 60_000;

/** The GitHub repository releases come from, as in install.sh's `PILOT_REPO_DEFAULT`. */
export const DEFAULT_RELEASE_REPO = "pilot-net/pilot";
/** How long `pilot version --check` waits for the release server by default (ms). */
export const RELEASE_CHECK_TIMEOUT_MS = 5_000;

/** The initiator repeats message 3 this often until an authenticated packet arrives (ms). */
export const FINAL_RETRY_MS = 1_000;
/** A half-open responder handshake is forgotten after this long (ms). */
export const HALF_OPEN_TIMEOUT_MS = 15_000;
/** How often the session timers run (ms): handshake retransmissions and punching probes. */
export const TIMER_TICK_MS = 250;
/**
 * How often a tick also walks every peer's sessions (ms): their timers
 * (message 3 repeats, answers, keepalives, rekeys, expiry) count in seconds,
 * and an idle node with thousands of sessions should not walk them four
 * times a second. A timer configured shorter (`timers` in config.json)
 * makes every tick walk them.
 */
export const SESSION_SWEEP_MS = 1_000;
/**
 * How often a sweep walks every peer (ms). The sweeps in between walk only
 * the peers with a timer due before the next full one, or one just begun
 * (data sent or received): an idle node does not touch thousands of idle
 * sessions every second. Every timer still fires within a sweep of its time,
 * but for the few only a keepalive or another node can move sooner: a key
 * a keepalive imported again, a path that came to need keepalives, trust
 * withdrawn. Those wait for the next full sweep.
 */
export const SESSION_FULL_SWEEP_MS = 5_000;
/** Received datagrams being processed at once; beyond this they are dropped and counted. */
export const MAX_INFLIGHT_DATAGRAMS = 4096;
/**
 * Their bytes at most: 4096 datagrams of up to 64 KiB would hold 256 MiB.
 * 16 MiB is 16 sessions' MAX_INFLIGHT_DECRYPT_BYTES; 4096 datagrams of
 * 1400 bytes are 5.5 MiB, so only large datagrams meet it.
 */
export const MAX_INFLIGHT_DATAGRAM_BYTES = 16 * 1024 * 1024;
/**
 * Of those, datagrams from other than a trusted peer's current endpoint; at
 * least `MAX_HANDSHAKES_IN_FLIGHT`, since a handshake waiting for the work
 * budget holds its datagram.
 */
export const MAX_INFLIGHT_STRANGER_DATAGRAMS = 256;
/** Bytes of those at most: 256 handshake datagrams (at most 1400 bytes each) fit. */
export const MAX_INFLIGHT_STRANGER_BYTES = 1024 * 1024;
/** Message 3s that may fail on one half-open handshake before it is abandoned. */
export const MAX_FINAL_FAILURES = 4;
/** An untrusted peer's sessions end after this long without a port-444 datagram either way (ms). */
export const UNTRUSTED_IDLE_MS = 60_000;
/** A data frame received is answered within this long, by a keepalive if nothing else went back (ms). */
export const DATA_ANSWER_MS = 1_000;
/** A peer that sent nothing back this long after we sent it data is handshaken again (ms). */
export const SESSION_SILENCE_MS = 5_000;
/** Longest wait between rekey attempts to a peer that does not answer; the wait doubles up to it (ms). */
export const REKEY_BACKOFF_MAX_MS = 40_000;
/** Message 1 per source IP that has not proved its address; beyond, a cookie reply instead of a drop. */
export const HANDSHAKE_RATE_UNPROVEN = { burst: 20, perSecond: 10 } as const;
/** Message 1 per trusted peer's current endpoint (rekeys, reconnects): a lane strangers cannot drain. */
export const HANDSHAKE_RATE_KNOWN = { burst: 20, perSecond: 10 } as const;
/** Half-open handshakes kept for message 1 from trusted peers' endpoints. */
export const RESERVED_KNOWN_HANDSHAKES = 128;
/** Handshake work budget in units per second; a unit is about 0.1 ms of CPU (measured here), so ~80% of one core. */
export const HANDSHAKE_WORK_PER_SECOND = 8_000;
/** Work units of answering message 1 (an ephemeral key, two X25519, key imports: ~1.8 ms of CPU). */
export const MSG2_WORK = 18;
/** Work units of checking message 3 from an identity verified before (one X25519, the split: ~0.6 ms of CPU). */
export const MSG3_WORK = 6;
/**
 * More work units when message 3 carries an identity not verified before
 * (its key's validity, the binding and self signatures: ~2 ms of CPU, most
 * of it on the event loop), charged once the payload is decrypted.
 */
export const IDENTITY_WORK = 20;
/** Share of the handshake work budget held back for message 1 and 3 from trusted peers' endpoints. */
export const HANDSHAKE_WORK_RESERVED = 0.25;
/**
 * The largest burst of strangers' handshake work, as this much of the
 * budget's refill (ms): a full second of it at once would hold the event
 * loop for hundreds of milliseconds.
 */
export const HANDSHAKE_WORK_BURST_MS = 100;
/** Longest a proven source's handshake work waits for the budget's refill instead of being dropped (ms). */
export const HANDSHAKE_WORK_MAX_WAIT_MS = 500;
/** Share of the handshake work budget one source IP may spend (its proven and unproven sources one share each). */
export const HANDSHAKE_WORK_PER_SOURCE = 0.15;
/**
 * Data frames per untrusted peer, checked before decryption: such a peer
 * reaches only the trust service's datagrams, a few per second.
 */
export const UNTRUSTED_FRAME_RATE = { burst: 64, perSecond: 32 } as const;
/**
 * Data frames per untrusted peer that carries relayed traffic (a node's
 * rendezvous; every node at a rendezvous), checked before decryption. The
 * relay's byte quotas apply after it.
 */
export const RELAY_FRAME_RATE = { burst: 4096, perSecond: 4096 } as const;
/** Confirmations per session answering repeats of its message 3 (each costs an encryption). */
export const RECONFIRM_RATE = { burst: 2, perSecond: 2 } as const;
/** Handshake computations (message 2 or 3) in flight at once; beyond, dropped and counted. */
export const MAX_HANDSHAKES_IN_FLIGHT = 64;
/**
 * Of those, computations for other than a trusted peer's endpoint running at
 * once; the others wait their turn in order (holding their slot). Each is a
 * chain of about 20 WebCrypto calls, and the runtime runs every call on a
 * thread of its own: 64 at once put hundreds of calls between a trusted
 * peer's packet and its decryption. Measured (`deno task floods --only
 * init_many_sources`, the attacker on the same 2 cores): the friend's ping
 * at the start of the flood 38-61 ms with 64, 12-31 ms with 4 (2 was no
 * better). One computation takes about 1 ms, so 4 at once still allow
 * thousands a second, far above the work budget.
 */
export const HANDSHAKE_COMPUTE_CONCURRENCY = 4;

/** Largest client-chosen message id (bytes of UTF-8); also correlation_id and in_reply_to. */
export const MAX_MESSAGE_ID = 128;
/** Entries in a message's meta map, at most. */
export const MAX_META_ENTRIES = 16;
/** Longest meta key (bytes). */
export const MAX_META_KEY = 64;
/** Longest meta value (bytes). */
export const MAX_META_VALUE = 255;

/** Domain label of a signed trust message (request, accept, reject, revoke); never transmitted. */
export const TRUST_LABEL = "pilot/trust/v1";
/** Largest trust message on the wire (body and signature), in bytes. */
export const TRUST_MESSAGE_MAX = 1300;
/** Longest reason in a trust request or reject, in bytes of UTF-8. */
export const TRUST_REASON_MAX = 1024;
/** How far an offline trust message's creation time may lie ahead of the local clock (ms). */
export const TRUST_MAX_CLOCK_SKEW_MS = 600_000;

/** Requests waiting for approval, at most (a full queue refuses, never evicts). */
export const MAX_PENDING_REQUESTS = 256;
/** A rejected key's requests are refused for this long (ms). */
export const REJECT_SUPPRESS_MS = 10 * 60_000;
/** Our outgoing request approves a crossing request for this long (ms). */
export const OUTGOING_REQUEST_TTL_MS = 7 * 24 * 3_600_000;
/** How often undelivered trust answers are retried (ms). */
export const OUTBOX_RETRY_MS = 5_000;
/** Undelivered trust answers are retried for this long (ms). */
export const OUTBOX_TTL_MS = 7 * 24 * 3_600_000;
/** First wait before an undelivered trust answer's peer is tried again (ms); doubles per failure, plus jitter. */
export const OUTBOX_BACKOFF_MIN_MS = 5_000;
/** Longest wait between active retries of an undelivered trust answer (ms). */
export const OUTBOX_BACKOFF_MAX_MS = 60_000;
/** Active retries to a silent peer stop after this long (ms); the answer then waits for the peer to connect. */
export const OUTBOX_ACTIVE_RETRY_MS = 5 * 60_000;
/** Acknowledgements remembered per (sender key, request id), so repeats are answered unprocessed. */
export const TRUST_ACK_CACHE = 4096;
/** Port-444 messages waiting for verification, at most; beyond, they are dropped and counted. */
export const TRUST_QUEUE_MAX = 256;
/** Of TRUST_QUEUE_MAX, places only trusted keys and keys we sent a request to may take. */
export const TRUST_QUEUE_RESERVED = 64;
/** Port-444 messages of one key waiting for verification, at most. */
export const TRUST_QUEUE_PER_KEY = 8;
/** Port-444 messages processed at once (always of different keys). */
export const TRUST_WORKERS = 4;
/** Pending requests from one source IP, at most (a full share refuses, never evicts). */
export const MAX_PENDING_PER_SOURCE = 32;
/** The pending log is compacted once it holds this many records more than pending entries. */
export const PENDING_LOG_SLACK = 1024;
/** First retransmission interval of a reliable datagram exchange (ms); doubles up to the max. */
export const TRUST_RETRY_MIN_MS = 250;
/** Largest retransmission interval of a reliable datagram exchange (ms). */
export const TRUST_RETRY_MAX_MS = 2_000;
/** Message-1 ephemeral keys (and static-key serials) remembered, at most. */
export const MAX_SEEN_EPHEMERALS = 65_536;
/** Largest datagram payload on a virtual port (keeps the UDP payload within MAX_DATAGRAM). */
export const MAX_PORT_DATAGRAM = 1400 - 13 - 16 - 17;
/** Datagrams queued for a `recv` that has not read them yet, at most. */
export const MAX_RECV_QUEUE = 1024;

/** Reliable streams: bytes a connection buffers for sending (written, not yet acknowledged). */
export const STREAM_SEND_BUFFER = 1024 * 1024;
/** Reliable streams: bytes a connection buffers for its reader (its largest receive window). */
export const STREAM_RECEIVE_BUFFER = 1024 * 1024;
/** Reliable streams: bytes every connection may buffer per direction even when the peer's budget is spent. */
export const STREAM_RESERVE_BUFFER = 64 * 1024;
/** Reliable streams: bytes buffered per peer and direction beyond the reserves, at most. */
export const STREAM_PEER_BUFFER = 8 * 1024 * 1024;
/** Reliable streams: open (not TIME_WAIT) connections per peer, at most. */
export const STREAM_MAX_CONNECTIONS = 256;
/** Reliable streams: TIME_WAIT connections kept per peer; beyond, the oldest ends early. */
export const STREAM_MAX_TIME_WAIT = 1024;
/** Reliable streams: out-of-order segments a connection holds, at most. */
export const STREAM_MAX_OUT_OF_ORDER = 2048;
/** Reliable streams: retransmission timeout before the first RTT sample (ms, RFC 6298). */
export const STREAM_INITIAL_RTO_MS = 1_000;
/** Reliable streams: lower bound of the retransmission timeout (ms; RFC 6298 says 1 s, Linux 200 ms). */
export const STREAM_MIN_RTO_MS = 200;
/** Reliable streams: upper bound of the retransmission timeout (ms). */
export const STREAM_MAX_RTO_MS = 60_000;
/**
 * Reliable streams: a receive window doubles when a whole window of data
 * arrived within this long (ms), a bulk transfer rather than requests and
 * answers (which keep their reserve).
 */
export const STREAM_WINDOW_GROWTH_MS = 1_000;
/**
 * Reliable streams: longest delay of an acknowledgement (ms); in-order data is
 * acknowledged at once after `STREAM_ACK_BYTES`.
 */
export const STREAM_DELAYED_ACK_MS = 1;
/**
 * Reliable streams: in-order data owes an ACK at once after this many bytes
 * (stretch ACKs: about every 8th segment of the 1328-byte MSS), or after two
 * of the largest segments received, whichever is more (every second
 * loopback segment). Each ACK is one AEAD call on both sides, so with small
 * segments ACKing every second one cost a third of the data path's crypto.
 * A flight of three loopback segments (`LOOPBACK_FLIGHT`, the least) never
 * waits for the delayed-ACK timer: its third segment's ACK comes with the
 * next one's. Slow start's byte-counting limit is the same amount.
 */
export const STREAM_ACK_BYTES = 10_000;
/**
 * Reliable streams: HyStart++ (RFC 9406 section 4.3, its recommended values),
 * which ends the first slow start when the round trip grows, before a
 * queue overflows. An RTT rise of lastRoundMinRtt / minRttDivisor, within
 * [minRttThreshMs, maxRttThreshMs], over a round of at least `rttSamples`
 * samples starts conservative slow start: cwnd grows a `cssGrowthDivisor`th
 * as fast for `cssRounds` rounds, then congestion avoidance.
 */
export const STREAM_HYSTART = {
  minRttThreshMs: 4,
  maxRttThreshMs: 16,
  minRttDivisor: 8,
  rttSamples: 8,
  cssGrowthDivisor: 4,
  cssRounds: 5,
} as const;
/**
 * Reliable streams' delay brake (`delay_brake.ts`): congestion avoidance
 * stops growing cwnd while more than `queueSegments` segments stand queued
 * on the path, as estimated from the round trip against its base (the
 * smallest RTT of the last `baseRounds` to twice that many rounds).
 */
export const STREAM_DELAY_BRAKE = {
  queueSegments: 16,
  baseRounds: 64,
} as const;
/** Reliable streams: a keepalive probe after this long without a segment from the peer (ms). */
export const STREAM_KEEPALIVE_MS = 10_000;
/** Reliable streams: a connection is reset after this long without a segment from the peer (ms). */
export const STREAM_IDLE_TIMEOUT_MS = 60_000;
/** Reliable streams: how long a closed connection absorbs late segments (2 x MSL, ms). */
export const STREAM_TIME_WAIT_MS = 30_000;
/** Reliable streams: connect() gives up after this long without an answer (ms). */
export const STREAM_CONNECT_TIMEOUT_MS = 15_000;
/** Reliable streams: longest interval between zero-window probes (ms). */
export const STREAM_PERSIST_MAX_MS = 30_000;
/** Reliable streams: first local port chosen for outgoing connections (the rest of the u16 range). */
export const STREAM_EPHEMERAL_PORT_MIN = 49_152;
/** Trust messages (port 444) per sender key: bucket size and refill per second. */
export const TRUST_RATE_PER_KEY = { burst: 20, perSecond: 2 } as const;
/** Offline trust messages remembered for replay refusal, at most (then new ones are refused). */
export const MAX_OFFLINE_REPLAY = 10_000;
/** UDP payload for stream segments where the path is loopback (no fragmentation there). */
export const LOOPBACK_DATAGRAM = 60_000;
/**
 * Linux's usual default socket receive buffer (net.core.rmem_default), which
 * Deno's datagram API cannot raise: 3 LOOPBACK_DATAGRAMs or 92 of 1400 bytes
 * fit (measured). `daemon/socket_buffers.ts` raises it where it can.
 */
export const DEFAULT_RECEIVE_BUFFER = 212_992;
/**
 * Receive and send buffer the daemon asks for on its UDP socket (bytes; Linux
 * then reports twice this). Headroom for bursts, not a larger window: a
 * message 1 flood's bursts overflowed the default buffer and the kernel
 * dropped a trusted peer's pings with them (`deno task floods --only
 * init_many_sources`: 200-380 drops and a lost ping in one run of two; none
 * with this). A larger buffer also queues longer under a sustained overload
 * (about 1,600 message 1s here), so it stays well below wireguard-go's 7 MiB.
 * A system default that is already larger is kept. A loopback stream fills
 * at most half of what a peer on this machine can count on (`daemon/udp.ts`
 * `loopbackStreamBuffer`).
 */
export const UDP_SOCKET_BUFFER = 1024 * 1024;
/**
 * Datagrams waiting to be sent on the UDP socket, at most (`daemon/udp.ts`
 * sends one at a time to each destination, in order); beyond, dropped and
 * counted. A stream's flight is a few hundred; the cap only bounds memory
 * if the socket stalls.
 */
export const UDP_SEND_QUEUE = 4096;
/**
 * Of UDP_SEND_QUEUE, the most that may wait for one destination: a peer
 * whose traffic backs up (a flood of segments, each owed an ACK) leaves
 * room for everyone else's.
 */
export const UDP_SEND_QUEUE_PER_DESTINATION = 1024;
/**
 * Bytes a stream keeps in flight where the path is loopback, under
 * DEFAULT_RECEIVE_BUFFER: three LOOPBACK_DATAGRAMs, what the receiving
 * socket holds. Nothing else drops on loopback, so a larger window only
 * overflows that buffer (measured: 6-9% of segments retransmitted without
 * the cap, none with it, and no less throughput). A larger system default,
 * or half of a raised buffer that any daemon here can get, raises it in
 * proportion (`loopbackFlight`, `loopbackStreamBuffer`): 14 datagrams under
 * a 2 MiB buffer, one-way 39-41 -> 44-52 MB/s in `bench --only stream`.
 */
export const LOOPBACK_FLIGHT = 3 * LOOPBACK_DATAGRAM;
/** Incoming streams waiting for a listener to take them, per port, at most. */
export const LISTEN_BACKLOG = 16;
/** A listened port with no listener waiting is released after this long (ms). */
export const LISTEN_LINGER_MS = 5_000;
/** Largest message data (bytes) on a port-1001 stream. */
export const MAX_STREAM_MESSAGE = 16 * 1024 * 1024;
/** How long `send --queue` retries a message by default: 24 h. */
export const DEFAULT_QUEUE_TTL_MS = 24 * 60 * 60 * 1000;
/** The longest TTL a queued message may have: 30 days. */
export const MAX_QUEUE_TTL_MS = 30 * 24 * 60 * 60 * 1000;
/** Largest raw file bytes in one FILE_DATA frame on a port-1001 stream. */
export const MAX_FILE_CHUNK = 64 * 1024;
/** Longest file name a sender may offer (bytes of UTF-8). */
export const MAX_FILE_NAME = 255;
/** Receipts a port-1001 stream may owe at once; beyond, the service stops reading it. */
export const MESSAGES_MAX_PIPELINED = 64;
/** Message bytes buffered per peer across its port-1001 streams (two largest messages). */
export const MESSAGES_PEER_BUFFER = 34 * 1024 * 1024;
/** Message bytes buffered across all peers' port-1001 streams. */
export const MESSAGES_TOTAL_BUFFER = 256 * 1024 * 1024;
/** Events (port 1002): longest topic or topic pattern, in bytes. */
export const PUBSUB_MAX_TOPIC = 128;
/** Events: largest event data, in bytes. */
export const PUBSUB_MAX_DATA = 64 * 1024;
/** Events: longest message of an ERROR frame, in bytes of UTF-8. */
export const PUBSUB_MAX_ERROR_MESSAGE = 512;
/** Events: frames queued for one subscription beyond its stream's send buffer, at most; more events are dropped and counted. */
export const PUBSUB_QUEUE_FRAMES = 1024;
/** Events: bytes queued for one subscription beyond its stream's send buffer, at most. */
export const PUBSUB_QUEUE_BYTES = 1024 * 1024;
/** Events: bytes each subscription may queue without drawing on the shared budget (at least one largest event). */
export const PUBSUB_RESERVE_BYTES = 128 * 1024;
/** Events: bytes all subscriptions share beyond their reserves (so queues hold at most 512 x 128 KiB + 16 MiB). */
export const PUBSUB_SHARED_BYTES = 16 * 1024 * 1024;
/** Events: subscriptions one peer holds at once, at most. */
export const PUBSUB_MAX_SUBSCRIPTIONS_PER_PEER = 32;
/** Events: subscriptions at once, at most. */
export const PUBSUB_MAX_SUBSCRIPTIONS = 512;
/** A port-1001 frame body (or file) with no progress for this long resets its stream (ms). */
export const MESSAGES_STALL_MS = 30_000;
/** Receipts one peer may owe across all its port-1001 streams; beyond, its streams wait. */
export const MESSAGES_PEER_RECEIPTS = 256;
/** Offers of a file this peer already stored, per peer: beyond the rate they are refused `rate_limited`. */
export const FILE_DUPLICATE_RATE = { burst: 20, perSecond: 5 } as const;

// Local control API limits: any local user can reach the port without the token, so every
// connection, body and held request is bounded and the accept loop never dies.

/** Control API: connections open at once, at most; beyond, the longest-idle one makes room. */
export const CONTROL_MAX_CONNECTIONS = 256;
/** Control API: a connection that has not sent complete request headers by then is closed (ms). */
export const CONTROL_HEADER_TIMEOUT_MS = 5_000;
/** Control API: a keep-alive connection with nothing in flight is closed after this long (ms); above the 15 s follow heartbeat. */
export const CONTROL_IDLE_TIMEOUT_MS = 30_000;
/** Control API: a request body not fully received by then is refused `timeout` (ms). */
export const CONTROL_BODY_TIMEOUT_MS = 30_000;
/** Control API: largest request body (bytes): a 16 MiB message as base64, with room. */
export const CONTROL_MAX_BODY = 32 * 1024 * 1024;
/** Control API: first and longest pause after a failed `accept` (EMFILE and the like), in ms. */
export const CONTROL_ACCEPT_BACKOFF_MS = { min: 10, max: 1_000 } as const;
/** Control API: long polls (`wait`) held at once, at most; beyond, `rate_limited`. */
export const CONTROL_MAX_LONG_POLLS = 64;
/** Control API: NDJSON follow streams open at once, at most; beyond, `rate_limited`. */
export const CONTROL_MAX_FOLLOWS = 64;
/** Control API: WebSocket byte streams open at once, at most; beyond, `rate_limited`. */
export const CONTROL_MAX_SOCKETS = 64;

// LAN discovery (PROTOCOL.md §14): signed announcements over link-scoped multicast.

/** LAN discovery: IPv4 group, in 239.255.0.0/16 (IPv4 Local Scope, RFC 2365). */
export const LAN_GROUP_V4 = "239.255.74.40";
/** LAN discovery: IPv6 group, link-local scope with the transient flag (not an IANA-assigned ff02:: group). */
export const LAN_GROUP_V6 = "ff12::7440";
/**
 * LAN discovery: the well-known UDP port announcements go to. Not 7441 and up: people run
 * more daemons on one host there; below Linux's ephemeral range (32768-60999).
 */
export const LAN_PORT = 27440;
/** LAN discovery: a node announces itself this often, give or take LAN_ANNOUNCE_JITTER_MS (ms). */
export const LAN_ANNOUNCE_MS = 30_000;
/** LAN discovery: random spread around LAN_ANNOUNCE_MS, either way (ms). */
export const LAN_ANNOUNCE_JITTER_MS = 5_000;
/** LAN discovery: how long an announcement's record is valid, and how long a heard one is kept (ms). */
export const LAN_RECORD_TTL_MS = 5 * 60_000;
/** LAN discovery: answers to soliciting announcements, at most one per this long (ms). */
export const LAN_ANSWER_MIN_MS = 1_000;
/** LAN discovery: nodes remembered at once; beyond, the least recently heard is forgotten. */
export const LAN_MAX_NODES = 256;
/** LAN discovery: announcements taken per source IP before any signature check (burst, per second). */
export const LAN_SOURCE_RATE = { burst: 5, perSecond: 1 } as const;
/** LAN discovery: source IPs whose rate is tracked at once. */
export const LAN_RATE_KEYS = 1024;

/**
 * V8 flags the program runs with, on every path that starts it: compile.sh
 * bakes them into the binary, and run from source `selfInvocation()` passes
 * them to `deno run` (`daemon start`, service units). A young generation of
 * at most 2 x 8 MiB: V8's default lets it grow to 2 x 32 MiB under a burst
 * of allocations that survive (a rendezvous filling its table, a handshake
 * burst) and keeps it reserved afterwards. Measured (`deno task bench`): a
 * 100,000-record table's RSS 272 MiB with the default, 209 with this cap; a
 * daemon's RSS growth over 1,024 first handshakes, read before any forced
 * GC, 71.5 KiB a session with the default, 31 with the cap (after a forced
 * GC both about 19); stream and message figures unchanged within the
 * machine's noise. And V8's `gc` exposed, for daemon/memory_settle.ts to
 * give back what a burst of datagrams leaves behind.
 */
export const RUNTIME_V8_FLAGS = "--max-semi-space-size=8,--expose-gc";

/** Datagram churn (bytes, see daemon/memory_settle.ts) between two minor GCs. */
export const MEMORY_MINOR_GC_BYTES = 4 * 1024 * 1024;
/**
 * Free bytes the C heap keeps at its top while datagrams churn
 * (glibc's M_TRIM_THRESHOLD, `daemon/memory_settle.ts`; its default gives
 * back all but 128 KiB at once, and comes back on a quiet beat): what a
 * minor GC each MEMORY_MINOR_GC_BYTES frees, with room (16 and 64 MiB did
 * no better). Without it, a stream's buffers went to fresh pages after every
 * minor GC. Measured with `deno task bench --only stream`, three runs each
 * alternating with the code before: one-way 49, 47, 47 -> 64, 60, 63 MB/s,
 * echo 58, 57, 59 -> 79, 77, 77, the sender at 72-76% CPU instead of
 * 81-84% (with the settle also counting sent datagrams; either alone gained
 * nothing clear).
 */
export const NATIVE_HEAP_KEEP_FREE = 2 * MEMORY_MINOR_GC_BYTES;
/** Datagram churn in one beat under which the daemon counts as quiet. */
export const MEMORY_SETTLE_QUIET_BYTES = 1024 * 1024;
/** Least time between two memory-reducing GCs (ms). */
export const MEMORY_SETTLE_INTERVAL_MS = 15_000;
/** Least V8 heap growth since the last memory-reducing GC, and reserve beyond what is in use, worth the next one's pause. */
export const MEMORY_SETTLE_SLACK_BYTES = 8 * 1024 * 1024;
/**
 * What a handshake computation (message 2 written, or message 3 checked)
 * counts for in a beat's churn (bytes): a few hundred handshakes grow the
 * heap by about 20 MB. So 16 of them in a second make the beat busy, and a
 * settle (a 40 ms full GC) no longer lands in the middle of a handshake
 * flood (`deno task floods --only handshakes_many_identities`: one did, in a
 * victim's profile).
 */
export const HANDSHAKE_CHURN = 64 * 1024;
/**
 * Datagram churn (bytes) after which a quiet beat settles the memory (a full
 * GC, then the C allocator's free pages given back, `daemon/native_heap.ts`)
 * even when V8's heap did not grow: a trusted peer's 110 MB/s of 60 KB
 * datagrams left the RSS 20-28 MB over its start without it.
 */
export const MEMORY_TRIM_AFTER_BYTES = 64 * 1024 * 1024;
/**
 * Least time since the last settle for one brought by datagram churn (ms).
 * With MEMORY_SETTLE_INTERVAL_MS, a settle just before a burst held the
 * burst's memory up to 15 s after it (`deno task floods`, three attacks in a
 * row: `pinned_segments` settled 5.7 s after its end, once the floods had
 * measured). A sender that alternates 64 MiB bursts with quiet seconds gets
 * one full GC (about 40 ms) per 5 s at most.
 */
export const MEMORY_TRIM_INTERVAL_MS = 5_000;
