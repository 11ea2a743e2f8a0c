/**
 * Replay slots against clients that stop reading (invariants 4 and 6), with a real nats-server,
 * the real gateway over HTTP, raw TCP clients from their own loopback addresses that send a
 * resume request and never read, and a real EventSource client resuming beside them.
 */
import { startNats, type NatsHandle } from "../support/nats";
import { startTestGateway, type TestGateway } from "../support/inProcessGateway";
import { connectJetStream, type TestJetStream } from "../support/jetstream";
import { RawSseClient } from "../support/rawSse";
import {
  expectStrictlyIncreasing,
  idsOf,
  metricValue,
  openRecorder,
  sleep,
  Tracker,
  unique,
  waitForId,
  waitUntil,
} from "./contract-helpers";

let nats: NatsHandle;
let js: TestJetStream;
const tracker = new Tracker();
const gateways: TestGateway[] = [];

/**
 * A stored history much larger than what loopback sockets buffer for a client that reads
 * nothing (a few MiB here), so a replay to such a client really waits on its socket.
 */
const HISTORY = 640;
const PAYLOAD_BYTES = 16 * 1024;
let subject: string;
let history: number[];

beforeAll(async () => {
  nats = await startNats();
  js = await connectJetStream(nats.url);
  const { stream, prefix } = unique("slots");
  await js.addStream(stream, [`${prefix}.>`]);
  subject = `${prefix}.history`;
  history = [];
  const pad = "x".repeat(PAYLOAD_BYTES);
  for (let i = 0; i < HISTORY; i += 32) {
    const acks = await Promise.all(
      Array.from({ length: Math.min(32, HISTORY - i) }, (_, k) =>
        js.publish(subject, `${i + k}:${pad}`),
      ),
    );
    history.push(...acks);
  }
  history.sort((a, b) => a - b);
});

afterEach(async () => {
  await tracker.closeAll();
  for (const g of gateways.splice(0)) await g.close();
});

afterAll(async () => {
  await js?.close();
  await nats?.close();
});

/** A gateway whose window is too small for a resume from 0: every such resume is a replay. */
async function gateway(env: Record<string, string>): Promise<TestGateway> {
  const g = await startTestGateway(nats.url, { WINDOW_MESSAGES: "2", ...env });
  gateways.push(g);
  return g;
}

/** A client resuming from sequence 0 from `localAddress` that reads nothing until told to. */
async function stalledResume(g: TestGateway, localAddress: string): Promise<RawSseClient> {
  return tracker.add(
    await RawSseClient.open({
      port: Number(new URL(g.url).port),
      localAddress,
      path: `/events/${subject}`,
      headers: { "Last-Event-ID": "0" },
    }),
  );
}

async function metric(g: TestGateway, name: string, labels?: Record<string, string>) {
  return metricValue(await g.metrics(), name, labels);
}

/** The replays of a gateway: running, waiting for a slot, paused on a full socket. */
async function replays(
  g: TestGateway,
): Promise<{ active: number; queued: number; paused: number }> {
  const text = await g.metrics();
  return {
    active: metricValue(text, "sse_replays_active"),
    queued: metricValue(text, "sse_replays_queued"),
    paused: metricValue(text, "sse_replays_paused"),
  };
}

/** An EventSource client resuming from 0 gets the whole history, once, in order, then live. */
async function expectHonestResume(g: TestGateway, waitMs: number): Promise<void> {
  const honest = await openRecorder(tracker, `${g.url}/events/${subject}`, {
    headers: { "Last-Event-ID": "0" },
  });
  await waitForId(honest, history[history.length - 1] as number, waitMs);
  const live = await js.publish(subject, "live");
  await waitForId(honest, live);
  const ids = idsOf(honest.events);
  expectStrictlyIncreasing(ids);
  expect(ids).toEqual([...history, live]);
  history.push(live);
}

describe("replay slots and clients that never read", () => {
  it("replay - a replay whose client stops reading gives its slot back, and an honest resume gets its replay", async () => {
    const g = await gateway({
      REPLAY_MAX_CONCURRENT: "2",
      REPLAY_MAX_PER_CLIENT: "2",
      CLIENT_LIMIT_BY: "address",
      REPLAY_STALL_TIMEOUT_MS: "500",
    });
    // Four clients from two addresses ask for the whole history and never read: on their own
    // they would hold both slots for as long as they stay connected.
    for (const address of ["127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"])
      await stalledResume(g, address);
    await waitUntil(async () => {
      const r = await replays(g);
      return r.active + r.queued + r.paused === 4;
    }, "all four stalled resumes to be replaying, queued or paused");

    await expectHonestResume(g, 30_000);

    // The four gave their slots back and hold none while they do not read; the honest replay
    // is over too, so no slot is in use.
    await waitUntil(
      async () => JSON.stringify(await replays(g)) === '{"active":0,"queued":0,"paused":4}',
      "every stalled replay to be paused, holding no slot",
    );
    expect(await metric(g, "sse_replays_stalled_total")).toBeGreaterThanOrEqual(4);
    expect(await metric(g, "sse_sessions")).toBe(5);
  });

  it("replay - one client address holds at most REPLAY_MAX_PER_CLIENT slots; others are served at once", async () => {
    const g = await gateway({
      REPLAY_MAX_CONCURRENT: "8",
      REPLAY_MAX_PER_CLIENT: "2",
      CLIENT_LIMIT_BY: "address",
      // Never within this test: only the per-address bound is at work.
      REPLAY_STALL_TIMEOUT_MS: "3600000",
      // Six resumes from one cursor would share one run (one slot): this is about replays of
      // their own. How runs count against the bound: replay-shared.test.ts.
      REPLAY_SHARED_BUFFER_BYTES: "0",
    });
    const stalled: RawSseClient[] = [];
    for (let i = 0; i < 6; i++) stalled.push(await stalledResume(g, "127.0.0.4"));
    // Slots are free, yet the address's replays beyond its two wait.
    await waitUntil(
      async () => JSON.stringify(await replays(g)) === '{"active":2,"queued":4,"paused":0}',
      "two replays running and four waiting for 127.0.0.4",
    );
    expect(await metric(g, "sse_replays_client_limited_total")).toBe(4);

    await expectHonestResume(g, 30_000);
    expect(await replays(g)).toEqual({ active: 2, queued: 4, paused: 0 });

    // When one of the address's clients leaves, its slot goes to the address's next replay.
    stalled[0]?.close();
    await waitUntil(
      async () => JSON.stringify(await replays(g)) === '{"active":2,"queued":3,"paused":0}',
      "the address's next replay to take the freed slot",
    );
  });

  it("replay - a paused catch-up gets heartbeats and continues where it stopped once its client reads", async () => {
    const g = await gateway({
      REPLAY_MAX_CONCURRENT: "1",
      REPLAY_STALL_TIMEOUT_MS: "300",
      HEARTBEAT_MS: "1000",
    });
    const client = await stalledResume(g, "127.0.0.5");
    await waitUntil(
      async () => (await replays(g)).paused === 1,
      "the replay to stall and pause",
      30_000,
    );
    // Pacing only: heartbeats fall due while the catch-up is paused.
    await sleep(2_500);

    client.startReading();
    await client.waitFor(
      () => client.ids.includes(history[history.length - 1] as number),
      "the whole history",
      60_000,
    );
    const live = await js.publish(subject, "live");
    await client.waitFor(() => client.ids.includes(live), "the live message");
    history.push(live);
    expect(client.status).toBe(200);
    expectStrictlyIncreasing(client.ids);
    expect(client.ids).toEqual(history);
    expect(client.comments.filter((c) => c === "ping").length).toBeGreaterThanOrEqual(2);
    expect(await metric(g, "sse_replays_stalled_total")).toBeGreaterThanOrEqual(1);
    expect(await replays(g)).toEqual({ active: 0, queued: 0, paused: 0 });
    expect(await metric(g, "sse_sessions_closed_total")).toBe(0);
  });

  it("replay - a paused catch-up is still closed as slow once the live events held for it pass the bound", async () => {
    const g = await gateway({
      REPLAY_MAX_CONCURRENT: "1",
      REPLAY_STALL_TIMEOUT_MS: "300",
      SESSION_MAX_BUFFER_BYTES: "262144",
    });
    await stalledResume(g, "127.0.0.6");
    await waitUntil(
      async () => (await replays(g)).paused === 1,
      "the replay to stall and pause",
      30_000,
    );
    // Live messages are held for a session until its catch-up ends; bounded at 64 (1 MiB).
    const pad = "y".repeat(PAYLOAD_BYTES);
    for (let i = 0; i < 64; i++) {
      history.push(await js.publish(subject, `live${i}:${pad}`));
      if ((await metric(g, "sse_sessions_closed_total", { reason: "slow" })) >= 1) break;
    }
    await waitUntil(
      async () => (await metric(g, "sse_sessions_closed_total", { reason: "slow" })) === 1,
      "the paused session to be closed as slow",
    );
    expect(await replays(g)).toEqual({ active: 0, queued: 0, paused: 0 });
  });
});
