/**
 * Purges and erasures (README, "Purges and erasures"): the gateway never serves what the
 * stream no longer holds, not even from a feed's recent window, and a purge leads to the
 * documented gap notice. Real nats-server, the gateway over real HTTP, EventSource clients.
 */
import { startNats, type NatsHandle } from "../support/nats";
import { startTestGateway, type TestGateway } from "../support/inProcessGateway";
import { connectJetStream, type TestJetStream } from "../support/jetstream";
import type { Received, SseRecorder } from "../support/sse-client";
import {
  expectStrictlyIncreasing,
  idsOf,
  messageIds,
  metricValue,
  openRecorder,
  publishMany,
  sleep,
  Tracker,
  unique,
  waitForId,
} from "./contract-helpers";

let nats: NatsHandle;
let js: TestJetStream;
/** Reads the stream's state before every window serves a session (WINDOW_CHECK_MS=0). */
let strict: TestGateway;
/** The default WINDOW_CHECK_MS (1 s). */
let standard: TestGateway;
const tracker = new Tracker();

beforeAll(async () => {
  nats = await startNats();
  js = await connectJetStream(nats.url);
  strict = await startTestGateway(nats.url, { WINDOW_CHECK_MS: "0" });
  standard = await startTestGateway(nats.url);
});

afterEach(() => tracker.closeAll());

afterAll(async () => {
  await tracker.closeAll();
  await strict?.close();
  await standard?.close();
  await js?.close();
  await nats?.close();
});

const replayed = async (g: TestGateway) =>
  metricValue(await g.metrics(), "sse_replayed_events_total");

function expectExactly(events: readonly Received[], expected: readonly number[]): void {
  const ids = idsOf(events);
  expectStrictlyIncreasing(ids);
  expect(ids).toEqual(expected);
}

/**
 * A stream with ten messages on one subject, and a client that keeps its feed live, so the
 * feed's window holds all ten before anything is removed.
 */
async function streamWithLiveFeed(g: TestGateway, label: string) {
  const { stream, prefix } = unique(label);
  await js.addStream(stream, [`${prefix}.>`]);
  const subject = `${prefix}.t`;
  const anchor = await openRecorder(tracker, `${g.url}/events/${subject}`);
  const seqs = await publishMany(js, subject, 10);
  await waitForId(anchor, seqs[9] as number);
  return { stream, subject, seqs, anchor };
}

/** Opens a client, publishes a sentinel once it is open, and returns what it got up to it. */
async function receivedUpToSentinel(
  url: string,
  subject: string,
  headers?: Record<string, string>,
): Promise<{ rec: SseRecorder; sentinel: number }> {
  const rec = await openRecorder(tracker, url, headers ? { headers } : undefined);
  const sentinel = await js.publish(subject, "sentinel");
  await waitForId(rec, sentinel);
  return { rec, sentinel };
}

describe("erased and deleted messages", () => {
  it("erase - a message erased from the stream reaches neither ?last=, nor ?from=, nor a resume, though the feed's window held it", async () => {
    const { stream, subject, seqs } = await streamWithLiveFeed(strict, "erase");
    const erased = seqs[4] as number;
    const deleted = seqs[6] as number;
    await js.jsm.streams.deleteMessage(stream, erased, true);
    await js.jsm.streams.deleteMessage(stream, deleted, false);
    const remaining = seqs.filter((s) => s !== erased && s !== deleted);
    const replayedBefore = await replayed(strict);

    const last = await receivedUpToSentinel(`${strict.url}/events/${subject}?last=10`, subject);
    expectExactly(last.rec.events, [...remaining, last.sentinel]);
    remaining.push(last.sentinel);

    const from = await receivedUpToSentinel(
      `${strict.url}/events/${subject}?from=${seqs[0]}`,
      subject,
    );
    expectExactly(from.rec.events, [...remaining, from.sentinel]);
    remaining.push(from.sentinel);

    const cursor = seqs[2] as number;
    const resume = await receivedUpToSentinel(`${strict.url}/events/${subject}`, subject, {
      "Last-Event-ID": String(cursor),
    });
    expectExactly(resume.rec.events, [...remaining.filter((s) => s > cursor), resume.sentinel]);

    // All of it came from the feed's window, without the removed messages: no replay ran.
    expect(await replayed(strict)).toBe(replayedBefore);
    expect(
      metricValue(await strict.metrics(), "sse_window_trimmed_total", { reason: "deleted" }),
    ).toBeGreaterThanOrEqual(2);
  });

  it("erase - with the default WINDOW_CHECK_MS, an erased message is no longer served from memory once that time has passed", async () => {
    const { stream, subject, seqs } = await streamWithLiveFeed(standard, "eraselazy");
    const erased = seqs[8] as number;
    await js.jsm.streams.deleteMessage(stream, erased, true);
    await sleep(1_100); // the documented bound: WINDOW_CHECK_MS (1000 ms)
    const { rec, sentinel } = await receivedUpToSentinel(
      `${standard.url}/events/${subject}?last=3`,
      subject,
    );
    expectExactly(rec.events, [seqs[6] as number, seqs[7] as number, seqs[9] as number, sentinel]);
  });

  it("purge - purging one subject removes exactly its messages from what new clients get", async () => {
    const { stream, prefix } = unique("subjpurge");
    await js.addStream(stream, [`${prefix}.>`]);
    const anchor = await openRecorder(tracker, `${strict.url}/events/${prefix}.%3E`);
    const kept: number[] = [];
    let last = 0;
    for (let i = 0; i < 12; i++) {
      last = await js.publish(`${prefix}.${i % 3 === 1 ? "gone" : "kept"}`, `m${i}`);
      if (i % 3 !== 1) kept.push(last);
    }
    await waitForId(anchor, last);
    await js.jsm.streams.purge(stream, { filter: `${prefix}.gone` });

    const rec = await openRecorder(tracker, `${strict.url}/events/${prefix}.%3E`, {
      headers: { "Last-Event-ID": "0" },
    });
    const sentinel = await js.publish(`${prefix}.kept`, "sentinel");
    await waitForId(rec, sentinel);
    expectExactly(rec.events, [...kept, sentinel]);
  });
});

describe("a full purge", () => {
  it("purge - a resume from before the purge gets gateway.gap, then only what is published next; connected clients just continue", async () => {
    const { stream, subject, seqs, anchor } = await streamWithLiveFeed(strict, "purge");
    const lastBefore = seqs[9] as number;
    await js.jsm.streams.purge(stream);

    const cursor = seqs[2] as number;
    const resumed = await openRecorder(tracker, `${strict.url}/events/${subject}`, {
      headers: { "Last-Event-ID": String(cursor) },
    });
    const from = await openRecorder(tracker, `${strict.url}/events/${subject}?from=${seqs[0]}`);
    const last = await openRecorder(tracker, `${strict.url}/events/${subject}?last=5`);
    const next = await publishMany(js, subject, 2, "after");
    for (const rec of [resumed, from, last, anchor]) await waitForId(rec, next[1] as number);

    const [gap, ...rest] = resumed.events;
    expect(gap?.type).toBe("gateway.gap");
    expect(gap?.id).toBe(String(lastBefore));
    expect(JSON.parse(gap?.data ?? "null")).toMatchObject({
      stream,
      cursor,
      firstAvailable: lastBefore + 1,
      missed: lastBefore - cursor,
    });
    expectExactly(rest, next);

    expect(from.events[0]?.type).toBe("gateway.gap");
    expectExactly(from.events.slice(1), next);
    // Nothing of the purged messages counts as "the last five" any more.
    expectExactly(last.events, next);
    // A connected client keeps what it was sent and is not told; delivery goes on.
    expect(anchor.events.every((e) => e.type === "message")).toBe(true);
    expect(messageIds(anchor.events)).toEqual([...seqs, ...next]);
  });
});
