/**
 * Sealed mailboxes (issue 10 item 2), with real daemons around one
 * rendezvous: an orchestrator and a worker that are never up at the same
 * time still become mutually trusted and deliver a job exactly once, every
 * step going through the worker's or the orchestrator's mailbox at the
 * rendezvous. Meanwhile the rendezvous holds the items but never a readable
 * reason, payload or message type: its home directory and a capture of its
 * loopback UDP traffic (the overlay; the local API is TCP) are searched
 * for markers.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Capture, containsBytes, tcpdumpUnavailable } from "./_capture.ts";
import {
  callApi,
  fixture,
  type ForegroundRendezvous,
  freeUdpPort,
  kill9,
  makeHome,
  PAIR_A_NAME,
  PAIR_B_NAME,
  spawnRendezvous,
  startRendezvous,
  TestNode,
  trustEntry,
  waitFor,
} from "./_daemon_harness.ts";

const RENDEZVOUS_FIXTURE = 5;
const REASON_MARKER = "reason-marker-4d1f9e";
const PAYLOAD_MARKER = "payload-marker-b27c05";
const ID_MARKER = "id-marker-93aa61";

/** Every file under `dir`, recursively, with its bytes. */
async function filesUnder(dir: string): Promise<{ path: string; bytes: Uint8Array }[]> {
  const out = [];
  for await (const e of Deno.readDir(dir)) {
    const path = join(dir, e.name);
    if (e.isDirectory) out.push(...await filesUnder(path));
    else if (e.isFile) out.push({ path, bytes: await Deno.readFile(path) });
  }
  return out;
}

/** Fails naming the file when any of `markers` appears in a file under `dir`. */
async function assertNoMarkers(dir: string, markers: string[]): Promise<number> {
  const files = await filesUnder(dir);
  for (const { path, bytes } of files) {
    for (const m of markers) {
      assert.ok(!containsBytes(bytes, new TextEncoder().encode(m)), `${m} readable in ${path}`);
    }
  }
  return files.length;
}

/** Stops a node's daemon, keeping its home (TestNode.stop() removes it). */
async function down(node: TestNode): Promise<void> {
  const r = await node.pilot("daemon", "stop", "--json");
  assert.equal(r.code, 0, r.stdout + r.stderr);
}

async function eventsOf(
  node: TestNode,
  type: string,
): Promise<{ data: Record<string, unknown> }[]> {
  const r = await callApi(node, "GET", "/v1/events", { query: { limit: "1000" } });
  return r.json.data.events.filter((e: { type: string }) => e.type === type);
}

Deno.test("two nodes never up together become trusted and deliver a job once, through sealed mailboxes the rendezvous cannot read", async () => {
  const noCapture = Deno.uid() === 0 ? await tcpdumpUnavailable() : "not root";
  await using rendezvous = await startRendezvous(RENDEZVOUS_FIXTURE);
  await using capture = noCapture === null ? await Capture.start(null, ["udp"]) : null;
  const at = rendezvous.at;
  const orchestrator = new TestNode(await makeHome({ identity: 0 }), {
    identity: 0,
    hostname: PAIR_A_NAME,
    args: ["--rendezvous", at],
  });
  const worker = new TestNode(await makeHome({ identity: 1 }), {
    identity: 1,
    hostname: PAIR_B_NAME,
    args: ["--rendezvous", at],
  });
  const records = async () =>
    (await rendezvous.node.pilot("rendezvous", "status", "--json")).json?.data?.records;
  const mailboxItems = async () =>
    (await rendezvous.node.pilot("rendezvous", "status", "--json")).json?.data?.mailboxes?.items;
  try {
    // The worker was up once: its record names the rendezvous as its mailbox.
    await worker.start();
    await waitFor("the worker's record", async () => (await records()) >= 1, 30_000);
    await down(worker);

    // 1. The orchestrator asks for trust while the worker is down, and goes down.
    await orchestrator.start();
    const asked = await orchestrator.pilot(
      "handshake",
      PAIR_B_NAME,
      "--reason",
      REASON_MARKER,
      "--queue",
      "--timeout",
      "2s",
      "--json",
    );
    assert.equal(asked.code, 0, asked.stdout + asked.stderr);
    assert.equal(asked.json.data.status, "queued");
    assert.equal(asked.json.data.peer?.address, worker.identity!.address, "the mailbox's owner");
    assert.ok(asked.json.data.mailbox, "a mailbox holds the request");
    await down(orchestrator);
    assert.equal(await mailboxItems(), 1);

    // 2. The worker starts, finds the request in its mailbox, approves; the accept goes to
    //    the orchestrator's mailbox.
    await worker.start();
    await waitFor("the request at the worker", async () => {
      const p = await worker.pilot("pending", "--json");
      return p.json?.data?.pending?.[0]?.address === orchestrator.identity!.address;
    }, 30_000);
    const pending = (await worker.pilot("pending", "--json")).json.data.pending[0];
    assert.equal(pending.reason, REASON_MARKER);
    const approved = await worker.pilot("approve", orchestrator.identity!.address, "--json");
    assert.equal(approved.code, 0, approved.stdout + approved.stderr);
    await waitFor(
      "the accept in the orchestrator's mailbox",
      async () => (await mailboxItems()) === 1,
      15_000,
    );
    await down(worker);

    // 3. The orchestrator comes back: trust is mutual without anyone asking again.
    await orchestrator.start();
    await waitFor("the orchestrator to see trust", async () => {
      const t = await orchestrator.pilot("trust", "--json");
      return t.json?.data?.trusted?.some((e: { address: string; mutual: boolean }) =>
        e.address === worker.identity!.address && e.mutual
      );
    }, 30_000);

    // 4. A job for the sleeping worker: kept locally and left, sealed, at its mailbox.
    const sent = await orchestrator.pilot(
      "send",
      PAIR_B_NAME,
      "--data",
      JSON.stringify({ command: PAYLOAD_MARKER }),
      "--type",
      "json",
      "--id",
      ID_MARKER,
      "--queue",
      "--timeout",
      "2s",
      "--json",
    );
    assert.equal(sent.json?.data?.delivery, "queued_relay", sent.stdout + sent.stderr);
    const outbox = (await orchestrator.pilot("outbox", "--json")).json.data.messages;
    assert.equal(outbox[0].state, "queued_relay");
    await down(orchestrator);
    assert.equal(await mailboxItems(), 1);
    // What the rendezvous keeps while it holds the job: nothing readable.
    const files = await assertNoMarkers(rendezvous.node.home, [
      REASON_MARKER,
      PAYLOAD_MARKER,
      ID_MARKER,
      '"json"',
    ]);
    assert.ok(files > 0);

    // 5. The worker takes the job and leaves its receipt; 6. the orchestrator sees it delivered.
    await worker.start();
    await waitFor("the job at the worker", async () => {
      const inbox = await worker.pilot("inbox", "--json");
      return inbox.json?.data?.messages?.length === 1;
    }, 30_000);
    await waitFor(
      "the receipt in the orchestrator's mailbox",
      async () => (await mailboxItems()) === 1,
      15_000,
    );
    await down(worker);
    await orchestrator.start();
    await waitFor(
      "message.delivered",
      async () =>
        (await eventsOf(orchestrator, "message.delivered")).some((e) => e.data.id === ID_MARKER),
      30_000,
    );
    assert.deepEqual((await orchestrator.pilot("outbox", "--json")).json.data.messages, []);
    await worker.start();
    const inbox = (await worker.pilot("inbox", "--json")).json.data.messages;
    assert.deepEqual(inbox.map((m: { id: string }) => m.id), [ID_MARKER], "exactly once");
    assert.equal(JSON.parse(inbox[0].data).command, PAYLOAD_MARKER);
    assert.equal(await mailboxItems(), 0, "every item acknowledged");

    if (capture !== null) {
      await capture.stop();
      const packets = await capture.packets();
      assert.ok(packets.length > 0);
      for (const p of packets) {
        for (const m of [REASON_MARKER, PAYLOAD_MARKER, ID_MARKER]) {
          assert.ok(!containsBytes(p.bytes, new TextEncoder().encode(m)), `${m} on the wire`);
        }
      }
    } else console.log(`capture skipped: ${noCapture}`);
  } catch (e) {
    // The daemons' own account of what went wrong.
    for (const n of [orchestrator, worker, rendezvous.node]) {
      const text = await Deno.readTextFile(join(n.home, "daemon.log")).catch(() => "");
      console.error(`--- ${n.home}/daemon.log\n${text.split("\n").slice(-40).join("\n")}`);
    }
    throw e;
  } finally {
    await Promise.allSettled([orchestrator.stop(), worker.stop()]);
  }
});

/** `pilot rendezvous` in `home` on a fixed port, restartable there (kill -9, then again). */
class FixedRendezvous {
  readonly node: TestNode;
  #run: ForegroundRendezvous | undefined;
  constructor(readonly home: string, readonly port: number) {
    this.node = new TestNode(home, { identity: RENDEZVOUS_FIXTURE });
  }
  get at(): string {
    return `${fixture(RENDEZVOUS_FIXTURE).public_key}@127.0.0.1:${this.port}`;
  }
  /** Starts it and waits for its API; its output is drained as it runs. */
  async start(): Promise<void> {
    this.#run = undefined;
    this.#run = await spawnRendezvous(this.node, `127.0.0.1:${this.port}`);
  }
  /** The last lines the rendezvous printed since it last started. */
  output(): string {
    return this.#run?.output.lines.join("\n") ?? "";
  }
  async kill(): Promise<void> {
    const { child, output } = this.#run!;
    await kill9(child.pid);
    await child.status;
    await output.done;
    // The next start must not read the dead daemon's control file as its own.
    await Deno.remove(join(this.home, "control.json")).catch(() => {});
  }
  async stop(): Promise<void> {
    await this.#run?.stop();
  }
}

Deno.test("kill -9 of the rendezvous, the sender and the receiver during a burst queued through mailboxes: every acknowledged message arrives exactly once", async () => {
  const COUNT = 30;
  const rendezvous = new FixedRendezvous(
    await makeHome({ identity: RENDEZVOUS_FIXTURE }),
    freeUdpPort(),
  );
  await rendezvous.start();
  const a = new TestNode(
    await makeHome({
      identity: 0,
      trust: [trustEntry(1, { mutual: true, hostname: PAIR_B_NAME })],
    }),
    { identity: 0, hostname: PAIR_A_NAME, args: ["--rendezvous", rendezvous.at] },
  );
  const b = new TestNode(
    await makeHome({ identity: 1, trust: [trustEntry(0, { mutual: true })] }),
    { identity: 1, hostname: PAIR_B_NAME, args: ["--rendezvous", rendezvous.at] },
  );
  const inboxIds = async () =>
    ((await b.pilot("inbox", "--limit", "1000", "--json")).json?.data?.messages ?? [])
      .map((m: { id: string }) => m.id) as string[];
  try {
    // B publishes its record (naming the rendezvous as its mailbox) and goes away.
    await b.start();
    await waitFor("B's record", async () => {
      const r = await rendezvous.node.pilot("rendezvous", "status", "--json");
      return r.json?.data?.records >= 1;
    }, 30_000);
    await down(b);
    await a.start();
    const send = (i: number) =>
      callApi(a, "POST", "/v1/send", {
        body: {
          peer: PAIR_B_NAME,
          data: `job ${i}`,
          id: `burst-${i}`,
          queue: true,
          timeout_ms: 1000,
        },
      });
    // Half the burst, then the rendezvous dies at a random moment of the second half.
    const first = await Promise.all(Array.from({ length: COUNT / 2 }, (_, i) => send(i)));
    // The burst's deposits took turns on the rendezvous's streams: none was reset.
    assert.deepEqual((await a.info()).mailboxes.deposit_failed, {});
    const second = Array.from({ length: COUNT / 2 }, (_, i) => send(COUNT / 2 + i));
    await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 300)));
    await rendezvous.kill();
    const answers = [...first, ...await Promise.all(second)];
    const acknowledged = answers
      .filter((r) => ["queued_local", "queued_relay"].includes(r.json?.data?.delivery))
      .map((r) => r.json.data.id as string);
    assert.equal(acknowledged.length, COUNT, JSON.stringify(answers.find((r) => !r.json?.data)));
    assert.ok(
      answers.some((r) => r.json.data.delivery === "queued_relay"),
      "some went to the mailbox before the rendezvous died",
    );
    await rendezvous.start();
    // Deposits the rendezvous's death cut short failed with their stream, never as internal errors.
    const failed = (await a.info()).mailboxes.deposit_failed;
    assert.ok(!("internal" in failed), JSON.stringify(failed));
    // The sender dies too; then the receiver comes back, and dies in the middle of taking them.
    await kill9(a.pid);
    await a.start();
    await b.start();
    await waitFor("some of the burst at B", async () => (await inboxIds()).length >= 3, 60_000);
    await kill9(b.pid);
    await b.start();
    await waitFor("the sender's outbox to empty", async () => {
      return (await a.pilot("outbox", "--json")).json.data.messages.length === 0;
    }, 120_000);
    const ids = await inboxIds();
    assert.equal(new Set(ids).size, ids.length, "no message twice");
    assert.deepEqual([...ids].sort(), [...acknowledged].sort(), "every acknowledged one");
  } catch (e) {
    for (const n of [a, b]) {
      const text = await Deno.readTextFile(join(n.home, "daemon.log")).catch(() => "");
      console.error(`--- ${n.home}/daemon.log\n${text.split("\n").slice(-30).join("\n")}`);
    }
    console.error(`--- the rendezvous's output\n${rendezvous.output()}`);
    throw e;
  } finally {
    await Promise.allSettled([a.stop(), b.stop(), rendezvous.stop()]);
  }
});
