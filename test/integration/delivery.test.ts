/**
 * Live delivery, subject selection and the SSE wire format, against a real nats-server and the
 * real gateway over HTTP, read by a real EventSource client (and raw bytes where the client's
 * parser would hide the framing).
 */
import { startNats, type NatsHandle } from "../support/nats";
import { startTestGateway, type TestGateway } from "../support/inProcessGateway";
import { connectJetStream, type TestJetStream } from "../support/jetstream";
import { rawGet, readSseFor } from "../support/sse-client";
import {
  errorBody,
  expectStrictlyIncreasing,
  idsOf,
  openRecorder,
  publishMany,
  rawPublishWithHeaderBlock,
  Tracker,
  unique,
  waitForId,
  waitUntil,
} from "./contract-helpers";

let nats: NatsHandle;
let js: TestJetStream;
let gw: TestGateway;
const tracker = new Tracker();

beforeAll(async () => {
  nats = await startNats();
  js = await connectJetStream(nats.url);
  // No heartbeat within a test's time (one has its own gateway), so byte-exact reads are exact.
  gw = await startTestGateway(nats.url, { RETRY_MS: "2000", HEARTBEAT_MS: "3600000" });
});

afterEach(async () => {
  await tracker.closeAll();
  // Each test starts with no session left on the gateway, so it can count its own.
  await waitUntil(() => gw.gateway.deps.sessions.size === 0, "sessions of the last test to close");
});

afterAll(async () => {
  await tracker.closeAll();
  await gw?.close();
  await js?.close();
  await nats?.close();
});

/** Waits until the in-process gateway has `n` open sessions (the client's stream is attached). */
const sessionsOpen = (g: TestGateway, n: number) =>
  waitUntil(() => g.gateway.deps.sessions.size === n, `${n} open sessions`);

describe("live delivery", () => {
  it("live - a fresh connection gets only what is published after it connects, with id = stream sequence", async () => {
    const { stream, prefix } = unique("live");
    await js.addStream(stream, [`${prefix}.>`]);
    const subject = `${prefix}.orders`;
    await publishMany(js, subject, 5, "before");

    const rec = await openRecorder(tracker, `${gw.url}/events/${subject}`);
    const after = await publishMany(js, subject, 6, "after");
    const sentinel = await js.publish(subject, "sentinel");
    await waitForId(rec, sentinel);

    expect(idsOf(rec.events)).toEqual([...after, sentinel]);
    expect(rec.events.map((e) => e.data)).toEqual([
      ...after.map((_, i) => `after#${i}`),
      "sentinel",
    ]);
    expect(rec.events.every((e) => e.type === "message")).toBe(true);
  });

  it("live - two clients on one subject each get every message once, in order", async () => {
    const { stream, prefix } = unique("fan");
    await js.addStream(stream, [`${prefix}.>`]);
    const subject = `${prefix}.x`;
    const a = await openRecorder(tracker, `${gw.url}/events/${subject}`);
    const b = await openRecorder(tracker, `${gw.url}/events/${subject}`);
    const seqs = await publishMany(js, subject, 40);
    await waitForId(a, seqs[39] as number);
    await waitForId(b, seqs[39] as number);
    expect(idsOf(a.events)).toEqual(seqs);
    expect(idsOf(b.events)).toEqual(seqs);
  });
});

describe("subjects", () => {
  it("subjects - several subjects of one stream get exactly those subjects, in stream order", async () => {
    const { stream, prefix } = unique("multi");
    await js.addStream(stream, [`${prefix}.>`]);
    const rec = await openRecorder(
      tracker,
      `${gw.url}/events?subject=${prefix}.a&subject=${prefix}.b`,
    );
    const expected: number[] = [];
    for (let i = 0; i < 12; i++) {
      const subject = `${prefix}.${["a", "b", "c"][i % 3]}`;
      const seq = await js.publish(subject, `${subject}#${i}`);
      if (!subject.endsWith(".c")) expected.push(seq);
    }
    const sentinel = await js.publish(`${prefix}.a`, "sentinel");
    await waitForId(rec, sentinel);
    expect(idsOf(rec.events)).toEqual([...expected, sentinel]);
    expect(rec.events.some((e) => e.data.startsWith(`${prefix}.c`))).toBe(false);
  });

  it("subjects - the path subject and query subjects combine into one connection", async () => {
    const { stream, prefix } = unique("combo");
    await js.addStream(stream, [`${prefix}.>`]);
    const rec = await openRecorder(tracker, `${gw.url}/events/${prefix}.a?subject=${prefix}.b`);
    const a = await js.publish(`${prefix}.a`, "a");
    await js.publish(`${prefix}.c`, "c");
    const b = await js.publish(`${prefix}.b`, "b");
    await waitForId(rec, b);
    expect(idsOf(rec.events)).toEqual([a, b]);
  });

  it("subjects - subjects in two different streams are refused with 400 subjects_span_streams", async () => {
    const one = unique("spanone");
    const two = unique("spantwo");
    await js.addStream(one.stream, [`${one.prefix}.>`]);
    await js.addStream(two.stream, [`${two.prefix}.>`]);
    const res = await rawGet(`${gw.url}/events?subject=${one.prefix}.a&subject=${two.prefix}.a`);
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(errorBody(res.body).error).toBe("subjects_span_streams");
  });

  it("wildcards - `*` matches exactly one token", async () => {
    const { stream, prefix } = unique("star");
    await js.addStream(stream, [`${prefix}.>`]);
    const rec = await openRecorder(tracker, `${gw.url}/events/${prefix}.eu.*`);
    const expected: number[] = [];
    for (const [subject, match] of [
      [`${prefix}.eu.1`, true],
      [`${prefix}.us.1`, false],
      [`${prefix}.eu.2.deep`, false],
      [`${prefix}.eu`, false],
      [`${prefix}.eu.3`, true],
    ] as const) {
      const seq = await js.publish(subject, subject);
      if (match) expected.push(seq);
    }
    const sentinel = await js.publish(`${prefix}.eu.end`, "end");
    await waitForId(rec, sentinel);
    expect(idsOf(rec.events)).toEqual([...expected, sentinel]);
  });

  it("wildcards - `>` (sent as %3E) matches one or more trailing tokens", async () => {
    const { stream, prefix } = unique("gt");
    await js.addStream(stream, [`${prefix}.>`]);
    const rec = await openRecorder(tracker, `${gw.url}/events/${prefix}.eu.%3E`);
    const expected: number[] = [];
    for (const [subject, match] of [
      [`${prefix}.eu.1`, true],
      [`${prefix}.us.1`, false],
      [`${prefix}.eu.2.deep`, true],
      [`${prefix}.eu`, false],
      [`${prefix}.euro.1`, false],
      [`${prefix}.eu.3.a.b.c`, true],
    ] as const) {
      const seq = await js.publish(subject, subject);
      if (match) expected.push(seq);
    }
    const sentinel = await js.publish(`${prefix}.eu.end`, "end");
    await waitForId(rec, sentinel);
    expect(idsOf(rec.events)).toEqual([...expected, sentinel]);
    expect(rec.events.map((e) => e.data).slice(0, -1)).toEqual([
      `${prefix}.eu.1`,
      `${prefix}.eu.2.deep`,
      `${prefix}.eu.3.a.b.c`,
    ]);
  });
});

describe("framing", () => {
  it("framing - multi-line payloads (LF, CR, CRLF) arrive with LF line breaks", async () => {
    const { stream, prefix } = unique("lines");
    await js.addStream(stream, [`${prefix}.>`]);
    const subject = `${prefix}.t`;
    const rec = await openRecorder(tracker, `${gw.url}/events/${subject}`);
    const cases: [string, string][] = [
      ["one\ntwo", "one\ntwo"],
      ["one\rtwo", "one\ntwo"],
      ["one\r\ntwo", "one\ntwo"],
      ["a\r\n\r\nb\n\rc", "a\n\nb\n\nc"],
      ["trailing\n", "trailing\n"],
      ["\nleading", "\nleading"],
      ["nul\u0000byte", "nul\ufffdbyte"],
      ["unicode é ✓ 😀", "unicode é ✓ 😀"],
      ["  spaced  ", "  spaced  "],
    ];
    const seqs: number[] = [];
    for (const [payload] of cases) seqs.push(await js.publish(subject, payload));
    await waitForId(rec, seqs[seqs.length - 1] as number);
    expect(idsOf(rec.events)).toEqual(seqs);
    expect(rec.events.map((e) => e.data)).toEqual(cases.map(([, want]) => want));
  });

  it("framing - a hostile payload stays one event with its own data and the stream's id", async () => {
    const { stream, prefix } = unique("hostile");
    await js.addStream(stream, [`${prefix}.>`]);
    const subject = `${prefix}.t`;
    const rec = await openRecorder(tracker, `${gw.url}/events/${subject}`, {
      types: ["admin", "gateway.gap", "gateway.reset"],
    });
    const hostile = "x\n\nid: 999\nevent: admin\nretry: 1\ndata: y";
    const seq = await js.publish(subject, hostile);
    const sentinel = await js.publish(subject, "after");
    await waitForId(rec, sentinel);
    expect(rec.events).toEqual([
      { id: String(seq), type: "message", data: hostile },
      { id: String(sentinel), type: "message", data: "after" },
    ]);
  });

  it("framing - the SSE-Event message header sets the event type", async () => {
    const { stream, prefix } = unique("etype");
    await js.addStream(stream, [`${prefix}.>`]);
    const subject = `${prefix}.t`;
    const rec = await openRecorder(tracker, `${gw.url}/events/${subject}`, {
      types: ["order.created", "order.paid"],
    });
    const a = await js.publish(subject, "1", { "SSE-Event": "order.created" });
    const b = await js.publish(subject, "2");
    const c = await js.publish(subject, "3", { "SSE-Event": "  order.paid  " });
    const d = await js.publish(subject, "4", { "Other-Header": "order.paid" });
    await waitForId(rec, d);
    expect(rec.events).toEqual([
      { id: String(a), type: "order.created", data: "1" },
      { id: String(b), type: "message", data: "2" },
      { id: String(c), type: "order.paid", data: "3" },
      { id: String(d), type: "message", data: "4" },
    ]);
  });

  it("framing - a header value carrying bare LF or CR cannot inject fields or stop the feed", async () => {
    const { stream, prefix } = unique("hdrinj");
    await js.addStream(stream, [`${prefix}.>`]);
    const subject = `${prefix}.t`;
    const url = `${gw.url}/events/${subject}`;
    const reading = readSseFor(url, 3_000);
    await sessionsOpen(gw, 1);
    // nats.js refuses to send these, but the NATS protocol carries them; nats.js then refuses
    // to decode them. The message must still be delivered, without a type, and nothing after it
    // may be lost.
    const lf = await rawPublishWithHeaderBlock(
      nats.url,
      subject,
      "NATS/1.0\r\nSSE-Event: evil\nid: 999\ndata: injected\r\n\r\n",
      "payload-lf",
    );
    const cr = await rawPublishWithHeaderBlock(
      nats.url,
      subject,
      "NATS/1.0\r\nSSE-Event: bad\rretry: 1\r\n\r\n",
      "payload-cr",
    );
    const after = await js.publish(subject, "after", { "SSE-Event": "fine" });
    const live = (await reading).text;
    const expected =
      "retry: 2000\n\n" +
      `id: ${lf}\ndata: payload-lf\n\n` +
      `id: ${cr}\ndata: payload-cr\n\n` +
      `id: ${after}\nevent: fine\ndata: after\n\n`;
    expect(live).toBe(expected);

    // The replay path reads the same messages from the stream: same bytes, no failure.
    const replayed = (await readSseFor(`${url}?from=${lf}`, 1_500)).text;
    expect(replayed).toBe(expected);
  });

  it("framing - the wire format is `retry:` first, then `id:` and one `data:` line per payload line", async () => {
    const { stream, prefix } = unique("wire");
    await js.addStream(stream, [`${prefix}.>`]);
    const subject = `${prefix}.t`;
    const first = await js.publish(subject, "x\n\nid: 999\nevent: admin\nretry: 1\ndata: y");
    const second = await js.publish(subject, "crlf\r\nline", { "SSE-Event": "kind" });
    // A stored start position makes the bytes deterministic: the whole exchange is known.
    const { status, text } = await readSseFor(`${gw.url}/events/${subject}?from=${first}`, 1_500);
    expect(status).toBe(200);
    expect(text).toBe(
      "retry: 2000\n\n" +
        `id: ${first}\ndata: x\ndata: \ndata: id: 999\ndata: event: admin\ndata: retry: 1\ndata: data: y\n\n` +
        `id: ${second}\nevent: kind\ndata: crlf\ndata: line\n\n`,
    );
  });

  it("framing - live frames have the same bytes as replayed ones", async () => {
    const { stream, prefix } = unique("wirelive");
    await js.addStream(stream, [`${prefix}.>`]);
    const subject = `${prefix}.t`;
    const reading = readSseFor(`${gw.url}/events/${subject}`, 2_000);
    await sessionsOpen(gw, 1);
    const seq = await js.publish(subject, "a\rb", { "SSE-Event": "live" });
    const { text } = await reading;
    expect(text).toBe(`retry: 2000\n\nid: ${seq}\nevent: live\ndata: a\ndata: b\n\n`);
  });
});

describe("stream headers", () => {
  it("headers - an event stream is text/event-stream, uncached, unbuffered and uncompressed", async () => {
    const { stream, prefix } = unique("hdrs");
    await js.addStream(stream, [`${prefix}.>`]);
    const res = await readSseFor(`${gw.url}/events/${prefix}.t`, 500, {
      "Accept-Encoding": "gzip, deflate, br",
      Accept: "text/event-stream",
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream(;|$)/);
    expect(res.headers.get("cache-control")).toBe("no-cache, no-transform");
    expect(res.headers.get("x-accel-buffering")).toBe("no");
    expect(res.headers.get("content-encoding")).toBeNull();
    expect(res.text.startsWith("retry: ")).toBe(true);
  });

  it("headers - idle streams carry `: ping` comment heartbeats", async () => {
    const hb = await startTestGateway(nats.url, { HEARTBEAT_MS: "1000" });
    try {
      const { stream, prefix } = unique("ping");
      await js.addStream(stream, [`${prefix}.>`]);
      const { status, text } = await readSseFor(`${hb.url}/events/${prefix}.t`, 2_500);
      expect(status).toBe(200);
      const lines = text.split("\n");
      expect(lines[0]).toMatch(/^retry: \d+$/);
      expect(lines.filter((l) => l === ": ping").length).toBeGreaterThanOrEqual(1);
      // Heartbeats are comments only: no event was dispatched on an idle subject.
      expect(lines.some((l) => l.startsWith("id:") || l.startsWith("data:"))).toBe(false);
    } finally {
      await hb.close();
    }
  });
});

describe("order under load", () => {
  it("live - a burst published concurrently arrives once each, in stream order", async () => {
    const { stream, prefix } = unique("burst");
    await js.addStream(stream, [`${prefix}.>`]);
    const rec = await openRecorder(tracker, `${gw.url}/events/${prefix}.%3E`);
    const seqs = (
      await Promise.all(
        Array.from({ length: 300 }, (_, i) => js.publish(`${prefix}.s${i % 4}`, `m${i}`)),
      )
    ).sort((a, b) => a - b);
    await waitForId(rec, seqs[seqs.length - 1] as number);
    const ids = idsOf(rec.events);
    expectStrictlyIncreasing(ids);
    expect(ids).toEqual(seqs);
  });
});
