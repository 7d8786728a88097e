/**
 * Contract of the rendezvous role's route (issue 9): the counters of a node
 * run by `pilot rendezvous`.
 *
 * @module
 */
import { int, obj, record } from "../schema.ts";
import { route } from "./spec.ts";

/** `GET /v1/rendezvous`: the record table and the handler's counters (rendezvous nodes only). */
export const RENDEZVOUS_STATUS = route({
  route: "GET /v1/rendezvous",
  input: {},
  output: obj({
    // Live records stored, and hostnames bound.
    records: int,
    hostnames: int,
    // Expired records of mailbox owners, kept 7 days for senders to seal to.
    retained: int,
    // Publishes refused, by reason (every reason from 0).
    refused: record(int),
    // Session frames relayed between nodes, and their bytes.
    relayed_frames: int,
    relayed_bytes: int,
    // Port-445 datagrams dropped unanswered, by reason (every reason from 0).
    dropped: record(int),
    // Mailboxes (port 447): sealed items held and their bytes, mailboxes with items,
    // deposits refused by reason, items expired unfetched, streams open and reset by reason.
    mailboxes: obj({
      items: int,
      bytes: int,
      mailboxes: int,
      refused: record(int),
      expired: int,
      streams: int,
      streams_dropped: record(int),
    }),
  }),
});
