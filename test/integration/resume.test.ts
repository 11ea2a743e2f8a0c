/**
 * Resume (invariant 1: exactly once, in order, per connection) and the gap and reset notices,
 * against a real nats-server and the real gateway over HTTP, read by a real EventSource client.
 */
import { startNats, type NatsHandle } from "../support/nats";
import { startTestGateway, type TestGateway } from "../support/inProcessGateway";
import { connectJetStream, type TestJetStream } from "../support/jetstream";
import type { Received, SseRecorder } from "../support/sse-client";
import {
  expectStrictlyIncreasing,
  idsOf,
  metricValue,
  openRecorder,
  publishMany,
  Tracker,
  unique,
  waitForId,
  waitUntil,
} from "./contract-helpers";

let nats: NatsHandle;
let js: TestJetStream;
/** Default window (WINDOW_MESSAGES=10000). */
let gw: TestGateway;
/** A window of two messages, so most resumes need a replay consumer. */
let small: TestGateway;
const tracker = new Tracker();

beforeAll(async () => {
  nats = await startNats();
  js = await connectJetStream(nats.url);
  gw = await startTestGateway(nats.url);
  small = await startTestGateway(nats.url, { WINDOW_MESSAGES: "2", REPLAY_BATCH: "16" });
});

afterEach(() => tracker.closeAll());

afterAll(async () => {
  await tracker.closeAll();
  await gw?.close();
  await small?.close();
  await js?.close();
  await nats?.close();
});

const replayedEvents = async (g: TestGateway) =>
  metricValue(await g.metrics(), "sse_replayed_events_total");

/** Everything a client received, checked as exactly `expected` (each once, in order). */
function expectExactly(events: readonly Received[], expected: readonly number[]): void {
  const ids = idsOf(events);
  expectStrictlyIncreasing(ids);
  expect(ids).toEqual(expected);
}

describe("resume", () => {
  it("resume - the Last-Event-ID header replays exactly what followed the cursor, then live", async () => {
    const { stream, prefix } = unique("hdr");
    await js.addStream(stream, [`${prefix}.>`]);
    const subject = `${prefix}.t`;
    const stored = await publishMany(js, subject, 10);
    const cursor = stored[3] as number;

    const rec = await openRecorder(tracker, `${gw.url}/events/${subject}`, {
      headers: { "Last-Event-ID": String(cursor) },
    });
    await waitForId(rec, stored[9] as number);
    const live = await publishMany(js, subject, 3, "live");
    await waitForId(rec, live[2] as number);

    expectExactly(rec.events, [...stored.slice(4), ...live]);
    expect(rec.events[0]?.data).toBe(`${subject}#4`);
  });

  it("resume - the lastEventId query parameter works like the header", async () => {
    const { stream, prefix } = unique("qry");
    await js.addStream(stream, [`${prefix}.>`]);
    const subject = `${prefix}.t`;
    const stored = await publishMany(js, subject, 8);
    const rec = await openRecorder(
      tracker,
      `${gw.url}/events/${subject}?lastEventId=${stored[1] as number}`,
    );
    await waitForId(rec, stored[7] as number);
    const live = await publishMany(js, subject, 2, "live");
    await waitForId(rec, live[1] as number);
    expectExactly(rec.events, [...stored.slice(2), ...live]);
  });

  it("resume - the header wins over the query parameter", async () => {
    const { stream, prefix } = unique("both");
    await js.addStream(stream, [`${prefix}.>`]);
    const subject = `${prefix}.t`;
    const stored = await publishMany(js, subject, 6);
    const rec = await openRecorder(
      tracker,
      `${gw.url}/events/${subject}?lastEventId=${stored[0] as number}`,
      { headers: { "Last-Event-ID": String(stored[3]) } },
    );
    const sentinel = await js.publish(subject, "sentinel");
    await waitForId(rec, sentinel);
    expectExactly(rec.events, [...stored.slice(4), sentinel]);
  });

  it("resume - a cursor on another subject's sequence resumes at the next matching message", async () => {
    const { stream, prefix } = unique("skip");
    await js.addStream(stream, [`${prefix}.>`]);
    const mine: number[] = [];
    let foreign = 0;
    for (let i = 0; i < 12; i++) {
      const seq = await js.publish(`${prefix}.${i % 2 === 0 ? "mine" : "other"}`, `m${i}`);
      if (i % 2 === 0) mine.push(seq);
      else if (i === 5) foreign = seq;
    }
    const rec = await openRecorder(tracker, `${gw.url}/events/${prefix}.mine`, {
      headers: { "Last-Event-ID": String(foreign) },
    });
    const sentinel = await js.publish(`${prefix}.mine`, "sentinel");
    await waitForId(rec, sentinel);
    expectExactly(rec.events, [...mine.filter((s) => s > foreign), sentinel]);
  });

  it("resume - a cursor inside a live feed's recent window is served from memory", async () => {
    const { stream, prefix } = unique("win");
    await js.addStream(stream, [`${prefix}.>`]);
    const subject = `${prefix}.t`;
    const first = await openRecorder(tracker, `${gw.url}/events/${subject}`);
    const seqs = await publishMany(js, subject, 10);
    await waitForId(first, seqs[9] as number);

    const before = await replayedEvents(gw);
    const second = await openRecorder(tracker, `${gw.url}/events/${subject}`, {
      headers: { "Last-Event-ID": String(seqs[5]) },
    });
    await waitForId(second, seqs[9] as number);
    const live = await publishMany(js, subject, 3, "live");
    await waitForId(second, live[2] as number);
    await waitForId(first, live[2] as number);

    expectExactly(second.events, [...seqs.slice(6), ...live]);
    expectExactly(first.events, [...seqs, ...live]);
    expect(second.events.map((e) => e.data).slice(0, 4)).toEqual([
      `${subject}#6`,
      `${subject}#7`,
      `${subject}#8`,
      `${subject}#9`,
    ]);
    // No replay consumer ran for the second client.
    expect((await replayedEvents(gw)) - before).toBe(0);
  });

  it("resume - a cursor older than the window runs a replay consumer and hands off to live", async () => {
    const { stream, prefix } = unique("old");
    await js.addStream(stream, [`${prefix}.>`]);
    const subject = `${prefix}.t`;
    const first = await openRecorder(tracker, `${small.url}/events/${subject}`);
    const seqs = await publishMany(js, subject, 10);
    await waitForId(first, seqs[9] as number);

    const before = await replayedEvents(small);
    const second = await openRecorder(tracker, `${small.url}/events/${subject}`, {
      headers: { "Last-Event-ID": String(seqs[2]) },
    });
    await waitForId(second, seqs[9] as number);
    const live = await publishMany(js, subject, 3, "live");
    await waitForId(second, live[2] as number);

    expectExactly(second.events, [...seqs.slice(3), ...live]);
    // The replay stops where the window (the last 2 messages) begins: JetStream sends only the
    // 5 messages the window no longer holds; the last 2 come from memory.
    expect((await replayedEvents(small)) - before).toBe(5);
  });

  it("resume - a cursor at the stream's last sequence gets only new messages", async () => {
    const { stream, prefix } = unique("tip");
    await js.addStream(stream, [`${prefix}.>`]);
    const subject = `${prefix}.t`;
    const seqs = await publishMany(js, subject, 4);
    const rec = await openRecorder(tracker, `${gw.url}/events/${subject}`, {
      headers: { "Last-Event-ID": String(seqs[3]) },
    });
    const live = await publishMany(js, subject, 2, "live");
    await waitForId(rec, live[1] as number);
    expectExactly(rec.events, live);
    expect(rec.events.some((e) => e.type !== "message")).toBe(false);
  });

  it("resume - Last-Event-ID 0 replays the whole stream", async () => {
    const { stream, prefix } = unique("zero");
    await js.addStream(stream, [`${prefix}.>`]);
    const subject = `${prefix}.t`;
    const seqs = await publishMany(js, subject, 5);
    const rec = await openRecorder(tracker, `${gw.url}/events/${subject}`, {
      headers: { "Last-Event-ID": "0" },
    });
    const sentinel = await js.publish(subject, "sentinel");
    await waitForId(rec, sentinel);
    expectExactly(rec.events, [...seqs, sentinel]);
  });

  it("resume - messages published while replays run arrive exactly once, in order (invariant 1)", async () => {
    const { stream, prefix } = unique("race");
    await js.addStream(stream, [`${prefix}.>`]);
    const subject = `${prefix}.t`;
    const initial = await publishMany(js, subject, 300, "initial");
    // A client on `small` keeps that feed live; `gw` gets its first client mid-flow below, so
    // its feed starts while messages are arriving.
    const anchor = await openRecorder(tracker, `${small.url}/events/${subject}`);

    const published: number[] = [];
    let failure: unknown;
    const publisher = (async () => {
      for (let i = 0; i < 600; i++) {
        published.push(await js.publish(subject, `flow#${i}`));
        if (i % 50 === 49) await new Promise((r) => setImmediate(r));
      }
    })().catch((err: unknown) => (failure = err));

    // Each client starts at a different point of the flow, from a cursor older than the
    // window of `small`, or with no feed yet on `gw`.
    const clients: { rec: SseRecorder; cursor: number }[] = [];
    const plan: { at: number; url: string; cursor: number; how: "header" | "query" }[] = [
      { at: 0, url: small.url, cursor: initial[10] as number, how: "header" },
      { at: 100, url: small.url, cursor: initial[150] as number, how: "query" },
      { at: 200, url: gw.url, cursor: initial[5] as number, how: "header" },
      { at: 300, url: small.url, cursor: initial[299] as number, how: "header" },
      { at: 400, url: gw.url, cursor: initial[200] as number, how: "query" },
    ];
    for (const step of plan) {
      await waitUntil(
        () => published.length >= step.at || failure !== undefined,
        `${step.at} messages published`,
        30_000,
        2,
      );
      const rec =
        step.how === "header"
          ? await openRecorder(tracker, `${step.url}/events/${subject}`, {
              headers: { "Last-Event-ID": String(step.cursor) },
            })
          : await openRecorder(tracker, `${step.url}/events/${subject}?lastEventId=${step.cursor}`);
      clients.push({ rec, cursor: step.cursor });
    }
    await publisher;
    expect(failure).toBeUndefined();
    expect(published.length).toBe(600);
    const sentinel = await js.publish(subject, "sentinel");
    const all = [...initial, ...published, sentinel];

    for (const { rec, cursor } of clients) {
      await waitForId(rec, sentinel, 30_000);
      expectExactly(
        rec.events,
        all.filter((s) => s > cursor),
      );
      expect(rec.errors).toBe(0);
    }
    await waitForId(anchor, sentinel, 30_000);
    expectStrictlyIncreasing(idsOf(anchor.events));
    expect(idsOf(anchor.events)).toEqual(all.filter((s) => s > (initial[299] as number)));
  });
});

describe("gap and reset notices", () => {
  it("gap - a cursor older than the stream's first sequence gets gateway.gap, then what remains", async () => {
    const { stream, prefix } = unique("gap");
    await js.addStream(stream, [`${prefix}.>`], { max_msgs: 5 });
    const subject = `${prefix}.t`;
    const seqs = await publishMany(js, subject, 20);
    const firstSeq = seqs[15] as number;
    const info = await js.jsm.streams.info(stream);
    expect(info.state.first_seq).toBe(firstSeq);

    const rec = await openRecorder(tracker, `${gw.url}/events/${subject}`, {
      headers: { "Last-Event-ID": String(seqs[1]) },
    });
    await waitForId(rec, seqs[19] as number);
    const live = await js.publish(subject, "live");
    await waitForId(rec, live);

    const [gap, ...rest] = rec.events;
    expect(gap?.type).toBe("gateway.gap");
    expect(gap?.id).toBe(String(firstSeq - 1));
    const body = JSON.parse(gap?.data ?? "null") as Record<string, unknown>;
    expect(body).toMatchObject({
      stream,
      cursor: seqs[1],
      firstAvailable: firstSeq,
      missed: firstSeq - (seqs[1] as number) - 1,
    });
    expect(rest.every((e) => e.type === "message")).toBe(true);
    expectStrictlyIncreasing(idsOf(rest));
    expect(idsOf(rest)).toEqual([...seqs.slice(15), live]);
  });

  it("gap - the notice's id is a cursor that resumes without a second notice", async () => {
    const { stream, prefix } = unique("gapid");
    await js.addStream(stream, [`${prefix}.>`], { max_msgs: 3 });
    const subject = `${prefix}.t`;
    const seqs = await publishMany(js, subject, 9);
    const first = await openRecorder(tracker, `${gw.url}/events/${subject}`, {
      headers: { "Last-Event-ID": "1" },
    });
    await waitForId(first, seqs[8] as number);
    const gapId = first.events[0]?.id;
    expect(first.events[0]?.type).toBe("gateway.gap");
    first.close();

    const again = await openRecorder(tracker, `${gw.url}/events/${subject}`, {
      headers: { "Last-Event-ID": String(gapId) },
    });
    const sentinel = await js.publish(subject, "sentinel");
    await waitForId(again, sentinel);
    expectExactly(again.events, [...seqs.slice(6), sentinel]);
  });

  it("reset - a cursor beyond the stream's last sequence gets gateway.reset, then new messages", async () => {
    const { stream, prefix } = unique("reset");
    await js.addStream(stream, [`${prefix}.>`]);
    const subject = `${prefix}.t`;
    const seqs = await publishMany(js, subject, 20);
    const last = seqs[19] as number;

    const rec = await openRecorder(tracker, `${gw.url}/events/${subject}`, {
      headers: { "Last-Event-ID": String(last + 1000) },
    });
    await rec.waitFor((events) => events.length >= 1);
    const live = await publishMany(js, subject, 3, "live");
    await waitForId(rec, live[2] as number);

    const [reset, ...rest] = rec.events;
    expect(reset?.type).toBe("gateway.reset");
    expect(reset?.id).toBe(String(last));
    expect(JSON.parse(reset?.data ?? "null")).toMatchObject({
      stream,
      cursor: last + 1000,
      lastSequence: last,
    });
    expectExactly(rest, live);
  });

  it("reset - messages published while the reset is worked out are not skipped", async () => {
    const { stream, prefix } = unique("resetrace");
    await js.addStream(stream, [`${prefix}.>`]);
    const subject = `${prefix}.t`;
    await publishMany(js, subject, 5);

    // Publish continuously; `started` counts publishes begun, so a client that has seen its
    // stream open knows which messages were certainly published after that.
    const published: number[] = [];
    let started = 0;
    let stop = false;
    let failure: unknown;
    const publisher = (async () => {
      for (let i = 0; i < 5_000 && !stop; i++) {
        started++;
        published.push(await js.publish(subject, `flow#${i}`));
      }
    })().catch((err: unknown) => (failure = err));

    const clients: { rec: SseRecorder; firstAfterOpen: number }[] = [];
    try {
      for (let c = 0; c < 6; c++) {
        await waitUntil(() => published.length >= 20 * (c + 1), "the flow to advance");
        const rec = await openRecorder(tracker, `${gw.url}/events/${subject}`, {
          headers: { "Last-Event-ID": "1000000" },
        });
        clients.push({ rec, firstAfterOpen: started });
      }
      await waitUntil(() => published.length >= 20 * 7 + 20, "more messages after the last client");
    } finally {
      stop = true;
      await publisher;
    }
    expect(failure).toBeUndefined();
    const sentinel = await js.publish(subject, "sentinel");
    const all = [...published, sentinel];

    for (const { rec, firstAfterOpen } of clients) {
      await waitForId(rec, sentinel);
      const [reset, ...rest] = rec.events;
      expect(reset?.type).toBe("gateway.reset");
      // Everything published after the client saw its stream open arrives, once, in order,
      // continuing right after the reset's id.
      const mustHave = all.slice(firstAfterOpen);
      expect(Number(reset?.id)).toBeLessThan(mustHave[0] as number);
      expectExactly(
        rest,
        all.filter((s) => s > Number(reset?.id)),
      );
    }
  });

  it("reset - a slow stream lookup does not make the reset skip what was published meanwhile", async () => {
    const { stream, prefix } = unique("resetslow");
    await js.addStream(stream, [`${prefix}.>`]);
    const subject = `${prefix}.t`;
    const stored = await publishMany(js, subject, 5);
    const slow = await startTestGateway(nats.url);
    try {
      // JetStream answering stream info slowly (a loaded cluster) widens the moment between
      // the client's stream opening and the gateway learning the stream's last sequence.
      const resolver = slow.gateway.deps.nats?.resolver;
      if (!resolver) throw new Error("gateway has no NATS handles");
      const state = resolver.state.bind(resolver);
      resolver.state = async (name: string) => {
        await new Promise((r) => setTimeout(r, 300));
        return state(name);
      };
      const rec = await openRecorder(tracker, `${slow.url}/events/${subject}`, {
        headers: { "Last-Event-ID": "999999" },
      });
      const live = await publishMany(js, subject, 3, "live");
      await waitForId(rec, live[2] as number);
      expect(rec.events[0]).toMatchObject({ type: "gateway.reset", id: String(stored[4]) });
      expectExactly(rec.events.slice(1), live);
    } finally {
      await tracker.closeAll();
      await slow.close();
    }
  });

  it("reset - a stream recreated under the client's cursor resets it to the new sequence space", async () => {
    const { stream, prefix } = unique("recreate");
    await js.addStream(stream, [`${prefix}.>`]);
    const subject = `${prefix}.t`;
    const old = await publishMany(js, subject, 30);
    await js.jsm.streams.delete(stream);
    await js.addStream(stream, [`${prefix}.>`]);
    const fresh = await publishMany(js, subject, 4, "fresh");

    const rec = await openRecorder(tracker, `${small.url}/events/${subject}`, {
      headers: { "Last-Event-ID": String(old[29]) },
    });
    const live = await js.publish(subject, "live");
    await waitForId(rec, live);
    expect(rec.events[0]).toMatchObject({ type: "gateway.reset", id: String(fresh[3]) });
    expectExactly(rec.events.slice(1), [live]);
  });

  it("reset - a stream deleted and recreated under a live client ends its stream, and the client resumes with a reset", async () => {
    const quick = await startTestGateway(nats.url, { SHED_RETRY_MS: "300" });
    try {
      const { stream, prefix } = unique("underlive");
      await js.addStream(stream, [`${prefix}.>`]);
      const subject = `${prefix}.t`;
      const rec = await openRecorder(tracker, `${quick.url}/events/${subject}`);
      const before = await publishMany(js, subject, 5);
      await waitForId(rec, before[4] as number);

      await js.jsm.streams.delete(stream);
      await js.addStream(stream, [`${prefix}.>`]);
      // The feed notices the stream went away and ends its sessions with a short retry; the
      // client comes back with Last-Event-ID 5 to a stream whose sequences start again.
      await waitUntil(
        async () =>
          metricValue(await quick.metrics(), "sse_sessions_closed_total", {
            reason: "feed-ended",
          }) >= 1,
        "the feed to end its session",
        30_000,
      );
      await waitUntil(
        () => rec.events.some((e) => e.type === "gateway.reset"),
        "a reset notice",
        15_000,
      );
      const after = await publishMany(js, subject, 3, "after");
      // Ids start over on the new stream, so wait for the payload, not the id.
      await waitUntil(
        () => rec.events.some((e) => e.data === "after#2"),
        "the new stream's messages",
      );
      const at = rec.events.findIndex((e) => e.type === "gateway.reset");
      expect(JSON.parse(rec.events[at]?.data ?? "{}")).toMatchObject({
        cursor: before[4],
        lastSequence: 0,
      });
      expectExactly(rec.events.slice(0, at), before);
      expectExactly(rec.events.slice(at + 1), after);
    } finally {
      await tracker.closeAll();
      await quick.close();
    }
  });
});
