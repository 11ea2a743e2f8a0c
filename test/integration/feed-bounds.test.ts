/**
 * What new subject sets may cost an instance (README, "Feeds: cost and recovery"): how many
 * feeds exist (MAX_FEEDS), how fast new ones start (FEED_CREATE_RATE), and how much each reads
 * to warm its window (FEED_WARMUP_BYTES). Real nats-server, real HTTP, EventSource clients.
 */
import { startNats, type NatsHandle } from "../support/nats";
import { startTestGateway, type TestGateway } from "../support/inProcessGateway";
import { connectJetStream, type TestJetStream } from "../support/jetstream";
import { rawGet, readSseFor, SseRecorder, type Received } from "../support/sse-client";
import {
  expectStrictlyIncreasing,
  idsOf,
  messageIds,
  metricValue,
  openRecorder,
  Tracker,
  unique,
  waitForId,
  waitUntil,
} from "./contract-helpers";

jest.setTimeout(120_000);

let nats: NatsHandle;
let js: TestJetStream;
const tracker = new Tracker();
const gateways: TestGateway[] = [];

beforeAll(async () => {
  nats = await startNats();
  js = await connectJetStream(nats.url);
});

afterEach(async () => {
  await tracker.closeAll();
  for (const g of gateways.splice(0)) await g.close();
});

afterAll(async () => {
  await js?.close();
  await nats?.close();
});

async function gateway(env: Record<string, string>): Promise<TestGateway> {
  const g = await startTestGateway(nats.url, { RETRY_MS: "300", SHED_RETRY_MS: "300", ...env });
  gateways.push(g);
  return g;
}

const metric = async (g: TestGateway, name: string, labels?: Record<string, string>) =>
  metricValue(await g.metrics(), name, labels);

function expectExactly(events: readonly Received[], expected: readonly number[]): void {
  const ids = idsOf(events);
  expectStrictlyIncreasing(ids);
  expect(ids).toEqual(expected);
}

/** What a shed EventSource request gets: a 200 stream holding only `retry:`, which then ends. */
async function expectShedForEventSource(url: string): Promise<void> {
  const shed = await readSseFor(url, 5_000, { Accept: "text/event-stream" });
  expect(shed.status).toBe(200);
  expect(shed.headers.get("content-type")).toMatch(/^text\/event-stream/);
  expect(shed.text).toMatch(/^retry: \d+\n/);
  expect(shed.text).not.toMatch(/^id:/m);
}

describe("MAX_FEEDS", () => {
  it("feeds - past MAX_FEEDS a new subject set is shed with a retry answer and counted, while subject sets with a feed are served", async () => {
    const g = await gateway({ MAX_FEEDS: "2", FEED_LINGER_MS: "60000" });
    const { stream, prefix } = unique("maxfeeds");
    await js.addStream(stream, [`${prefix}.>`]);
    const a = await openRecorder(tracker, `${g.url}/events/${prefix}.a`);
    const b = await openRecorder(tracker, `${g.url}/events/${prefix}.b`);

    await expectShedForEventSource(`${g.url}/events/${prefix}.c`);
    const plain = await rawGet(`${g.url}/events/${prefix}.c`);
    expect(plain.status).toBe(503);
    expect(JSON.parse(plain.body)).toMatchObject({ error: "feed_limit" });
    expect(Number(plain.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(await metric(g, "sse_feed_refusals_total", { reason: "limit" })).toBe(2);
    expect(await metric(g, "sse_requests_shed_total", { reason: "feed-limit" })).toBe(2);

    // A subject set that has a feed is not affected.
    const a2 = await openRecorder(tracker, `${g.url}/events/${prefix}.a`);
    const seq = await js.publish(`${prefix}.a`, "still served");
    await waitForId(a, seq);
    await waitForId(a2, seq);

    // A feed without clients (lingering) makes room for a new subject set.
    b.close();
    await waitUntil(
      async () => (await metric(g, "sse_feeds_lingering")) === 1,
      "b's feed to linger",
    );
    const c = await openRecorder(tracker, `${g.url}/events/${prefix}.c`);
    const cSeq = await js.publish(`${prefix}.c`, "now served");
    await waitForId(c, cSeq);
    expect(await metric(g, "sse_feeds_lingering")).toBe(0);
    expect(await metric(g, "sse_feed_creations_total")).toBe(3);
    expect(await metric(g, "sse_feeds")).toBe(2);
  });
});

describe("FEED_CREATE_RATE", () => {
  it("feeds - new subject sets beyond FEED_CREATE_RATE are shed, and their EventSource clients come back by themselves and are served", async () => {
    const g = await gateway({ FEED_CREATE_RATE: "1" });
    const { stream, prefix } = unique("rate");
    await js.addStream(stream, [`${prefix}.>`]);
    const subjects = [0, 1, 2, 3].map((i) => `${prefix}.s${i}`);
    // Four new subject sets at once, one feed creation per second allowed.
    const clients = subjects.map((s) => tracker.add(new SseRecorder(`${g.url}/events/${s}`)));
    await waitUntil(
      async () => (await metric(g, "sse_feed_creations_total")) === 4,
      "every subject set to get its feed in the end",
      30_000,
      100,
    );
    expect(await metric(g, "sse_feed_refusals_total", { reason: "rate" })).toBeGreaterThan(0);
    expect(await metric(g, "sse_requests_shed_total", { reason: "feed-rate" })).toBeGreaterThan(0);
    // Each client receives its subject's messages once it is served (a client that was shed
    // is back within its retry: publish until it gets one, bounded).
    for (const [i, client] of clients.entries()) {
      const subject = subjects[i] as string;
      await waitUntil(
        async () => {
          await js.publish(subject, "ping");
          return messageIds(client.events).length > 0;
        },
        `client ${i} to be served`,
        30_000,
        200,
      );
    }
  });
});

describe("FEED_WARMUP_BYTES", () => {
  it("feeds - a new feed reads at most FEED_WARMUP_BYTES to fill its window, and serves resumes within it from memory", async () => {
    const budget = 64 * 1024;
    const g = await gateway({ FEED_WARMUP_BYTES: String(budget), REPLAY_BATCH: "64" });
    const { stream, prefix } = unique("warm");
    await js.addStream(stream, [`${prefix}.>`]);
    const subject = `${prefix}.t`;
    const payload = (i: number) => `${String(i).padStart(6, "0")}:${"x".repeat(1_000)}`;
    const seqs: number[] = [];
    for (let i = 0; i < 1_000; i += 100) {
      const acks = Array.from({ length: 100 }, (_, k) => js.js.publish(subject, payload(i + k)));
      for (const ack of await Promise.all(acks)) seqs.push(ack.seq);
    }
    seqs.sort((p, q) => p - q);
    const replayedBefore = await metric(g, "sse_replayed_events_total");

    // About a megabyte is stored; the feed may read 64 KiB of it.
    const near = seqs[989] as number;
    const recent = await openRecorder(tracker, `${g.url}/events/${subject}`, {
      headers: { "Last-Event-ID": String(near) },
    });
    const sentinel = await js.publish(subject, "sentinel");
    await waitForId(recent, sentinel);
    expectExactly(recent.events, [...seqs.slice(990), sentinel]);
    const read = await metric(g, "sse_feed_warmup_bytes_total");
    expect(read).toBeGreaterThan(10 * 1_000);
    expect(read).toBeLessThanOrEqual(budget);
    expect(await metric(g, "sse_feed_warmups_total", { result: "complete" })).toBe(1);
    expect(await metric(g, "sse_replayed_events_total")).toBe(replayedBefore);

    // An older cursor is still served exactly, by a replay.
    const far = seqs[499] as number;
    const old = await openRecorder(tracker, `${g.url}/events/${subject}`, {
      headers: { "Last-Event-ID": String(far) },
    });
    await waitForId(old, sentinel, 30_000);
    expectExactly(old.events, [...seqs.slice(500), sentinel]);
    expect(old.events[0]?.data).toBe(payload(500));
    expect(await metric(g, "sse_replayed_events_total")).toBeGreaterThan(replayedBefore);
  });

  it("feeds - a warm-up longer than one pull fills the window with the stream's tail, served to resumes from memory", async () => {
    const g = await gateway({});
    const { stream, prefix } = unique("warmlong");
    await js.addStream(stream, [`${prefix}.>`]);
    const subject = `${prefix}.t`;
    const acks = Array.from({ length: 3_000 }, (_, i) =>
      js.js.publish(i % 2 === 0 ? subject : `${prefix}.other`, `m${i}:${"z".repeat(60)}`),
    );
    const seqs = (await Promise.all(acks))
      .filter((_, i) => i % 2 === 0)
      .map((a) => a.seq)
      .sort((p, q) => p - q);
    const replayedBefore = await metric(g, "sse_replayed_events_total");
    const cursor = seqs[100] as number;
    const rec = await openRecorder(tracker, `${g.url}/events/${subject}`, {
      headers: { "Last-Event-ID": String(cursor) },
    });
    const sentinel = await js.publish(subject, "sentinel");
    await waitForId(rec, sentinel);
    expectExactly(rec.events, [...seqs.slice(101), sentinel]);
    expect(await metric(g, "sse_feed_warmups_total", { result: "complete" })).toBe(1);
    expect(await metric(g, "sse_replayed_events_total")).toBe(replayedBefore);
  });

  it("feeds - 200 requests for distinct subjects that leave at once cost at most MAX_FEEDS consumers and FEED_WARMUP_BYTES each", async () => {
    const budget = 16 * 1024;
    const g = await gateway({
      MAX_FEEDS: "20",
      FEED_CREATE_RATE: "100000",
      FEED_WARMUP_BYTES: String(budget),
    });
    const { stream, prefix } = unique("amplify");
    await js.addStream(stream, [`${prefix}.>`]);
    const acks = [];
    for (let i = 0; i < 2_000; i++)
      acks.push(js.js.publish(`${prefix}.s${i % 200}`, `${i}:${"y".repeat(500)}`));
    await Promise.all(acks);

    let peakConsumers = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const info = await js.jsm.streams.info(stream);
        peakConsumers = Math.max(peakConsumers, info.state.consumer_count);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    // Each request leaves as soon as its answer starts.
    const statuses = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const controller = new AbortController();
        const res = await fetch(`${g.url}/events/${prefix}.s${i}`, {
          headers: { Accept: "text/event-stream" },
          signal: controller.signal,
        });
        controller.abort();
        return res.status;
      }),
    );
    // Let the feeds that started finish their warm-up before judging what they read.
    await waitUntil(
      async () =>
        (await metric(g, "sse_feed_warmups_total")) ===
        (await metric(g, "sse_feed_creations_total")),
      "every warm-up to end",
    );
    sampling = false;
    await sampler;

    expect(statuses.every((status) => status === 200)).toBe(true);
    const created = await metric(g, "sse_feed_creations_total");
    const refused = await metric(g, "sse_feed_refusals_total", { reason: "limit" });
    // Each was served, or shed when all MAX_FEEDS feeds were still starting; the ones that
    // left linger and make room for the next.
    expect(created + refused).toBe(200);
    // Each feed is at most its live consumer and, while it warms up, one more.
    expect(peakConsumers).toBeLessThanOrEqual(2 * 20);
    expect(await metric(g, "sse_feed_warmup_bytes_total")).toBeLessThanOrEqual(created * budget);
  });
});
