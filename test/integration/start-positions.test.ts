/**
 * Opt-in start positions for fresh connections (`last`, `from`, `since`), against a real
 * nats-server and the real gateway over HTTP, read by a real EventSource client.
 */
import { startNats, type NatsHandle } from "../support/nats";
import { startTestGateway, type TestGateway } from "../support/inProcessGateway";
import { connectJetStream, type TestJetStream } from "../support/jetstream";
import { rawGet, type Received } from "../support/sse-client";
import {
  errorBody,
  expectStrictlyIncreasing,
  idsOf,
  openRecorder,
  publishMany,
  sleep,
  Tracker,
  unique,
  waitForId,
} from "./contract-helpers";

let nats: NatsHandle;
let js: TestJetStream;
/** Default window: a fresh feed warms it from the stream. */
let gw: TestGateway;
/** No window at all: every start position is worked out against JetStream. */
let bare: TestGateway;
const tracker = new Tracker();

beforeAll(async () => {
  nats = await startNats();
  js = await connectJetStream(nats.url);
  gw = await startTestGateway(nats.url, { MAX_LAST: "500" });
  bare = await startTestGateway(nats.url, { WINDOW_MESSAGES: "0", MAX_LAST: "500" });
});

afterEach(() => tracker.closeAll());

afterAll(async () => {
  await tracker.closeAll();
  await gw?.close();
  await bare?.close();
  await js?.close();
  await nats?.close();
});

function expectExactly(events: readonly Received[], expected: readonly number[]): void {
  const ids = idsOf(events);
  expectStrictlyIncreasing(ids);
  expect(ids).toEqual(expected);
}

/**
 * Publishes `n` messages, choosing each one's subject with `pick`, and returns the sequences
 * per subject suffix, in stream order.
 */
async function publishInterleaved(
  prefix: string,
  n: number,
  pick: (i: number) => string,
): Promise<Map<string, number[]>> {
  const bySubject = new Map<string, number[]>();
  for (let i = 0; i < n; i++) {
    const suffix = pick(i);
    const seq = await js.publish(`${prefix}.${suffix}`, `${suffix}#${i}`);
    bySubject.set(suffix, [...(bySubject.get(suffix) ?? []), seq]);
  }
  return bySubject;
}

// "The last N" is counted when the gateway works out the start, which may be a moment after
// the stream opened; so the tests publish their sentinel only once the N have arrived, and
// then check that nothing else came (no N+1st, no duplicate).
describe.each([
  ["a warmed window", () => gw],
  ["no window (JetStream probes)", () => bare],
])("last N with %s", (_label, gateway) => {
  it("last - delivers exactly the last N matching messages when other subjects are interleaved", async () => {
    const { stream, prefix } = unique("lastalt");
    await js.addStream(stream, [`${prefix}.>`]);
    const seqs = await publishInterleaved(prefix, 50, (i) => (i % 2 === 0 ? "a" : "b"));
    const a = seqs.get("a") ?? [];
    const rec = await openRecorder(tracker, `${gateway().url}/events/${prefix}.a?last=7`);
    await rec.waitForCount(7);
    const live = await js.publish(`${prefix}.a`, "live");
    await waitForId(rec, live);
    expectExactly(rec.events, [...a.slice(-7), live]);
  });

  it("last - finds the start when the subject is sparse and irregular", async () => {
    const { stream, prefix } = unique("lastsparse");
    await js.addStream(stream, [`${prefix}.>`]);
    // About one message in five is "rare", at irregular distances, so the probe search has to
    // widen and then bisect.
    const seqs = await publishInterleaved(prefix, 200, (i) =>
      (i * 7919) % 23 < 5 ? "rare" : `noise${i % 3}`,
    );
    const rare = seqs.get("rare") ?? [];
    expect(rare.length).toBeGreaterThan(20);
    for (const n of [1, 13, rare.length - 1]) {
      const rec = await openRecorder(tracker, `${gateway().url}/events/${prefix}.rare?last=${n}`);
      await rec.waitForCount(n);
      const sentinel = await js.publish(`${prefix}.rare`, `sentinel-${n}`);
      await waitForId(rec, sentinel);
      expectExactly(rec.events, [...rare.slice(-n), sentinel]);
      rare.push(sentinel);
      rec.close();
    }
  });

  it("last - asking for more than exist delivers all of them", async () => {
    const { stream, prefix } = unique("lastall");
    await js.addStream(stream, [`${prefix}.>`]);
    const seqs = await publishInterleaved(prefix, 12, (i) => (i % 3 === 0 ? "few" : "many"));
    const rec = await openRecorder(tracker, `${gateway().url}/events/${prefix}.few?last=100`);
    await rec.waitForCount(4);
    const sentinel = await js.publish(`${prefix}.few`, "sentinel");
    await waitForId(rec, sentinel);
    expectExactly(rec.events, [...(seqs.get("few") ?? []), sentinel]);
  });

  it("last - works across a set of subjects", async () => {
    const { stream, prefix } = unique("lastset");
    await js.addStream(stream, [`${prefix}.>`]);
    const seqs = await publishInterleaved(prefix, 40, (i) => ["x", "y", "z"][i % 3] as string);
    const xy = [...(seqs.get("x") ?? []), ...(seqs.get("y") ?? [])].sort((p, q) => p - q);
    const rec = await openRecorder(
      tracker,
      `${gateway().url}/events?subject=${prefix}.x&subject=${prefix}.y&last=9`,
    );
    await rec.waitForCount(9);
    const sentinel = await js.publish(`${prefix}.y`, "sentinel");
    await waitForId(rec, sentinel);
    expectExactly(rec.events, [...xy.slice(-9), sentinel]);
  });
});

describe("from and since", () => {
  it("from - starts at the given sequence, inclusive, then goes live", async () => {
    const { stream, prefix } = unique("from");
    await js.addStream(stream, [`${prefix}.>`]);
    const seqs = await publishMany(js, `${prefix}.t`, 10);
    for (const g of [gw, bare]) {
      const rec = await openRecorder(tracker, `${g.url}/events/${prefix}.t?from=${seqs[4]}`);
      const sentinel = await js.publish(`${prefix}.t`, "sentinel");
      await waitForId(rec, sentinel);
      expectExactly(rec.events, [...seqs.slice(4), sentinel]);
      seqs.push(sentinel);
      rec.close();
    }
  });

  it("from - a sequence of another subject starts at the next matching message", async () => {
    const { stream, prefix } = unique("fromskip");
    await js.addStream(stream, [`${prefix}.>`]);
    const seqs = await publishInterleaved(prefix, 10, (i) => (i % 2 === 0 ? "a" : "b"));
    const b = seqs.get("b") ?? [];
    const a = seqs.get("a") ?? [];
    const rec = await openRecorder(tracker, `${bare.url}/events/${prefix}.a?from=${b[2]}`);
    const sentinel = await js.publish(`${prefix}.a`, "sentinel");
    await waitForId(rec, sentinel);
    expectExactly(rec.events, [...a.filter((s) => s > (b[2] as number)), sentinel]);
  });

  it("from - the sequence after the last one is simply live, with no notice", async () => {
    const { stream, prefix } = unique("fromnext");
    await js.addStream(stream, [`${prefix}.>`]);
    const seqs = await publishMany(js, `${prefix}.t`, 3);
    const next = (seqs[2] as number) + 1;
    const rec = await openRecorder(tracker, `${gw.url}/events/${prefix}.t?from=${next}`);
    const sentinel = await js.publish(`${prefix}.t`, "sentinel");
    await waitForId(rec, sentinel);
    expect(sentinel).toBe(next);
    expect(rec.events.map((e) => [e.type, Number(e.id)])).toEqual([["message", sentinel]]);
  });

  it("from - beyond the stream's end gets gateway.reset (cursor from-1), then what is published next", async () => {
    const { stream, prefix } = unique("frombeyond");
    await js.addStream(stream, [`${prefix}.>`]);
    const seqs = await publishMany(js, `${prefix}.t`, 3);
    for (const g of [gw, bare]) {
      const last = seqs.at(-1) as number;
      const rec = await openRecorder(tracker, `${g.url}/events/${prefix}.t?from=${last + 50}`, {
        types: ["gateway.gap", "gateway.reset"],
      });
      await rec.waitFor((events) => events.length >= 1);
      const sentinel = await js.publish(`${prefix}.t`, "sentinel");
      await waitForId(rec, sentinel);
      const [reset, ...rest] = rec.events;
      expect(reset?.type).toBe("gateway.reset");
      expect(Number(reset?.id)).toBe(last);
      expect(JSON.parse(reset?.data ?? "null")).toEqual({
        stream,
        cursor: last + 49,
        lastSequence: last,
      });
      expect(rest.map((e) => [e.type, Number(e.id)])).toEqual([["message", sentinel]]);
      rec.close();
      seqs.push(sentinel);
    }
  });

  it("from - before the stream's first sequence gets gateway.gap, then what remains", async () => {
    const { stream, prefix } = unique("frombefore");
    await js.addStream(stream, [`${prefix}.>`], { max_msgs: 3 });
    const seqs = await publishMany(js, `${prefix}.t`, 8);
    const first = seqs[5] as number;
    const rec = await openRecorder(tracker, `${bare.url}/events/${prefix}.t?from=2`);
    // What remains first: a message published now would push the oldest out of the stream.
    await waitForId(rec, seqs[7] as number);
    const sentinel = await js.publish(`${prefix}.t`, "sentinel");
    await waitForId(rec, sentinel);
    const [gap, ...rest] = rec.events;
    expect(gap?.type).toBe("gateway.gap");
    expect(JSON.parse(gap?.data ?? "null")).toEqual({
      stream,
      cursor: 1,
      firstAvailable: first,
      missed: first - 2,
    });
    expectExactly(rest, [...seqs.slice(5), sentinel]);
  });

  it("since - delivers only messages stored at or after the time, then live", async () => {
    const { stream, prefix } = unique("since");
    await js.addStream(stream, [`${prefix}.>`]);
    await publishMany(js, `${prefix}.t`, 5, "early");
    await sleep(100);
    const since = new Date().toISOString();
    await sleep(100);
    const later = await publishMany(js, `${prefix}.t`, 4, "later");
    for (const g of [gw, bare]) {
      const rec = await openRecorder(
        tracker,
        `${g.url}/events/${prefix}.t?since=${encodeURIComponent(since)}`,
      );
      const sentinel = await js.publish(`${prefix}.t`, "sentinel");
      await waitForId(rec, sentinel);
      expectExactly(rec.events, [...later, sentinel]);
      expect(rec.events.every((e) => !e.data.startsWith("early"))).toBe(true);
      later.push(sentinel);
      rec.close();
    }
  });

  it("since - accepts milliseconds since the epoch", async () => {
    const { stream, prefix } = unique("sincems");
    await js.addStream(stream, [`${prefix}.>`]);
    await publishMany(js, `${prefix}.t`, 3, "early");
    await sleep(100);
    const since = Date.now();
    await sleep(100);
    const later = await publishMany(js, `${prefix}.t`, 2, "later");
    const rec = await openRecorder(tracker, `${gw.url}/events/${prefix}.t?since=${since}`);
    const sentinel = await js.publish(`${prefix}.t`, "sentinel");
    await waitForId(rec, sentinel);
    expectExactly(rec.events, [...later, sentinel]);
  });

  it("since - a time after every stored message delivers only new ones", async () => {
    const { stream, prefix } = unique("sincefuture");
    await js.addStream(stream, [`${prefix}.>`]);
    await publishMany(js, `${prefix}.t`, 3);
    await sleep(50);
    const rec = await openRecorder(
      tracker,
      `${gw.url}/events/${prefix}.t?since=${encodeURIComponent(new Date().toISOString())}`,
    );
    const sentinel = await js.publish(`${prefix}.t`, "sentinel");
    await waitForId(rec, sentinel);
    expectExactly(rec.events, [sentinel]);
  });

  it("start - a resume cursor wins over a start position in the URL", async () => {
    // What a browser does: its EventSource URL carries ?last=3 and it reconnects with a cursor.
    const { stream, prefix } = unique("cursorwins");
    await js.addStream(stream, [`${prefix}.>`]);
    const seqs = await publishMany(js, `${prefix}.t`, 10);
    const rec = await openRecorder(tracker, `${gw.url}/events/${prefix}.t?last=3`, {
      headers: { "Last-Event-ID": String(seqs[1]) },
    });
    const sentinel = await js.publish(`${prefix}.t`, "sentinel");
    await waitForId(rec, sentinel);
    expectExactly(rec.events, [...seqs.slice(2), sentinel]);
  });
});

describe("refused start positions", () => {
  let subject: string;

  beforeAll(async () => {
    const { stream, prefix } = unique("badstart");
    await js.addStream(stream, [`${prefix}.>`]);
    subject = `${prefix}.t`;
  });

  it.each([
    ["last and from", "last=3&from=2"],
    ["last and since", "last=3&since=2026-01-31T12:00:00Z"],
    ["from and since", "from=2&since=2026-01-31T12:00:00Z"],
    ["all three", "last=1&from=1&since=1"],
    ["last given twice", "last=1&last=2"],
    ["last = 0", "last=0"],
    ["last above MAX_LAST", "last=501"],
    ["last not a number", "last=ten"],
    ["last negative", "last=-5"],
    ["from = 0", "from=0"],
    ["from not a number", "from=1.5"],
    ["since not a time", "since=yesterday"],
    ["since without a zone", "since=2026-01-31T12:00:00"],
    ["since an impossible date", "since=2026-02-31T25:61:00Z"],
    ["since a date that does not exist (February 30)", "since=2026-02-30T00:00:00Z"],
    ["since midnight written as 24:00", "since=2026-01-31T24:00:00Z"],
    ["since before JetStream's time range (1677)", "since=1600-01-01T00:00:00Z"],
    ["since after JetStream's time range (2262)", "since=2262-04-12T00:00:00Z"],
    ["since after JetStream's time range, in epoch milliseconds", "since=9999999999999"],
  ])("start - %s is refused with 400 invalid_start", async (_label, query) => {
    const res = await rawGet(`${gw.url}/events/${subject}?${query}`);
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const body = errorBody(res.body);
    expect(body.error).toBe("invalid_start");
    expect(body.message.length).toBeGreaterThan(0);
  });
});
