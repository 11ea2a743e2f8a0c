/**
 * Resilience against the broker and against slow clients, with a real nats-server and the
 * gateway running in this process:
 * - nats-server stops and starts again under a streaming client (DESIGN invariant 1, readiness),
 * - a client that stops reading is evicted while everyone else is served (invariant 4).
 */
import net from "node:net";
import { randomUUID } from "node:crypto";
import { startTestGateway, type TestGateway } from "../support/inProcessGateway";
import { connectJetStream, type TestJetStream } from "../support/jetstream";
import { messageIds, waitUntil } from "./contract-helpers";
import { startNats, type NatsHandle } from "../support/nats";
import { sleep } from "../support/process";
import { rawGet, readSseFor, SseRecorder } from "../support/sse-client";

jest.setTimeout(120_000);

const WAIT_MS = 30_000;

/** `waitUntil` with this file's argument order and bounds. */
const pollUntil = (
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs = WAIT_MS,
  everyMs = 100,
) => waitUntil(probe, what, timeoutMs, everyMs);

/** HTTP status of a GET to `url` (throws when nothing answers). */
async function statusOf(url: string): Promise<number> {
  return (await rawGet(url)).status;
}

/**
 * Publishes until JetStream acknowledges, for a publisher riding out a server restart. The
 * message id makes a retried publish that had in fact been stored come back as a duplicate
 * with the original sequence, so the returned sequence is the only copy in the stream.
 */
async function publishAcked(
  js: TestJetStream,
  subject: string,
  data: string,
  timeoutMs = WAIT_MS,
): Promise<number> {
  const msgId = randomUUID();
  const deadline = Date.now() + timeoutMs;
  let attempts = 0;
  for (;;) {
    attempts++;
    try {
      return await js.publish(subject, data, { "Nats-Msg-Id": msgId });
    } catch (err) {
      if (Date.now() > deadline || attempts >= 200) {
        throw new Error(`publish to ${subject} not acked after ${attempts} attempts`, {
          cause: err,
        });
      }
      await sleep(100);
    }
  }
}

describe("when nats-server stops and starts again under a streaming client", () => {
  let nats: NatsHandle;
  let js: TestJetStream;
  let gw: TestGateway;
  const recorders: SseRecorder[] = [];

  beforeAll(async () => {
    nats = await startNats();
    js = await connectJetStream(nats.url);
    await js.addStream("RESNATS", ["resnats.>"]);
    gw = await startTestGateway(nats.url, {
      NATS_RECONNECT_MIN_MS: "50",
      NATS_RECONNECT_MAX_MS: "500",
      NATS_REQUEST_TIMEOUT_MS: "2000",
      HEARTBEAT_MS: "1000",
      RETRY_MS: "300",
      SHED_RETRY_MS: "300",
    });
  });

  afterAll(async () => {
    for (const r of recorders) r.close();
    await gw?.close();
    await js?.close().catch(() => undefined);
    await nats?.close();
  });

  test("the client receives every message published before and after the outage exactly once, in order", async () => {
    const client = new SseRecorder(`${gw.url}/events/resnats.ticks`);
    recorders.push(client);
    await client.waitFor(() => client.opens >= 1, WAIT_MS);

    const published: number[] = [];
    for (let i = 0; i < 10; i++) published.push(await js.publish("resnats.ticks", `before ${i}`));
    await client.waitFor((ev) => messageIds(ev).length >= published.length, WAIT_MS);
    expect(messageIds(client.events)).toEqual(published);

    await nats.stop();

    // While the broker is away the pod is alive but must not receive new streams.
    await pollUntil("/readyz to answer 503 while NATS is down", async () => {
      return (await statusOf(`${gw.adminUrl}/readyz`)) === 503;
    });
    expect(await statusOf(`${gw.adminUrl}/livez`)).toBe(200);
    const readyz = await rawGet(`${gw.adminUrl}/readyz`);
    expect(readyz.status).toBe(503);
    expect(JSON.parse(readyz.body)).toMatchObject({ checks: { nats: false } });
    // A browser opening a stream now is told to come back (invariant 7), not given a 5xx.
    const shed = await readSseFor(`${gw.url}/events/resnats.ticks`, 5_000, {
      Accept: "text/event-stream",
    });
    expect(shed.status).toBe(200);
    expect(shed.text).toMatch(/^retry: \d+\n/);
    expect(shed.text).not.toMatch(/^id:/m);

    await sleep(1_000);
    expect(await statusOf(`${gw.adminUrl}/livez`)).toBe(200);
    await nats.start();

    for (let i = 0; i < 10; i++) {
      published.push(await publishAcked(js, "resnats.ticks", `after ${i}`));
    }
    const last = published[published.length - 1] as number;
    await client.waitFor((ev) => messageIds(ev).includes(last), WAIT_MS);
    // Let anything duplicated or late arrive before judging.
    await sleep(500);

    const ids = messageIds(client.events);
    expect(new Set(published).size).toBe(published.length);
    expect(ids).toEqual(published);
    // No gap or reset notice: nothing was lost, so nothing may be announced as lost.
    expect(client.events.filter((e) => e.type !== "message")).toEqual([]);

    await pollUntil("/readyz to answer 200 after NATS is back", async () => {
      return (await statusOf(`${gw.adminUrl}/readyz`)) === 200;
    });
  });
});

/** A minimal decoder for an HTTP/1.1 chunked body (the gateway streams with chunked framing). */
function dechunk(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = body.indexOf("\r\n", at);
    if (eol < 0) break;
    const size = parseInt(body.subarray(at, eol).toString("latin1"), 16);
    if (!Number.isFinite(size) || size === 0) break;
    const start = eol + 2;
    const end = Math.min(start + size, body.length);
    parts.push(body.subarray(start, end));
    if (end < start + size) break; // truncated last chunk: keep what arrived
    at = end + 2;
  }
  return Buffer.concat(parts);
}

/** Ids of the events that arrived complete (ended by a blank line) in a raw SSE body. */
function completeEventIds(sse: string): number[] {
  const blocks = sse.split("\n\n");
  blocks.pop(); // whatever follows the last blank line is incomplete (or empty)
  const ids: number[] = [];
  for (const block of blocks) {
    const m = /^id: (\d+)$/m.exec(block);
    if (m) ids.push(Number(m[1]));
  }
  return ids;
}

describe("when a client stops reading (invariant 4)", () => {
  let nats: NatsHandle;
  let js: TestJetStream;
  let gw: TestGateway;
  const recorders: SseRecorder[] = [];
  const sockets: net.Socket[] = [];

  beforeAll(async () => {
    nats = await startNats();
    js = await connectJetStream(nats.url);
    await js.addStream("RESSLOW", ["resslow.>"]);
    gw = await startTestGateway(nats.url, {
      // Below Node's 64 KiB write high-water mark, and twice one message: catch-ups must be
      // paced by what the socket takes, not by 'drain' alone.
      SESSION_MAX_BUFFER_BYTES: "32768",
      // Pinned (not the default) so the test knows which cursors the window covers.
      WINDOW_BYTES: "4194304",
      HEARTBEAT_MS: "1000",
      RETRY_MS: "300",
      SHED_RETRY_MS: "300",
    });
  });

  afterAll(async () => {
    for (const r of recorders) r.close();
    for (const s of sockets) s.destroy();
    await gw?.close();
    await js?.close().catch(() => undefined);
    await nats?.close();
  });

  test("the gateway evicts the stalled session, serves the reading client everything, and a resume loses nothing", async () => {
    const subject = "resslow.big";
    const { port } = new URL(gw.url);

    // A client that sends its request and then never reads.
    const slow = net.connect({ host: "127.0.0.1", port: Number(port) });
    sockets.push(slow);
    const chunks: Buffer[] = [];
    let slowEnded = false;
    slow.on("data", (c: Buffer) => chunks.push(c));
    slow.on("end", () => (slowEnded = true));
    slow.on("close", () => (slowEnded = true));
    slow.on("error", () => (slowEnded = true));
    await new Promise<void>((resolve, reject) => {
      slow.once("connect", resolve);
      slow.once("error", reject);
    });
    slow.write(
      `GET /events/${subject} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
        `Accept: text/event-stream\r\n\r\n`,
    );
    // Wait until the response head has arrived (the session exists), then stop reading.
    await pollUntil("the stalled client's response head", async () =>
      Buffer.concat(chunks).includes("\r\n\r\n"),
    );
    slow.pause();

    const reader = new SseRecorder(`${gw.url}/events/${subject}`);
    recorders.push(reader);
    await reader.waitFor(() => reader.opens >= 1, WAIT_MS);

    // The kernel also buffers for a stalled reader (about 4 MiB of socket buffers on loopback
    // here) before any bytes queue in the gateway, so publish 16 KiB messages in rounds until the
    // gateway reports a slow eviction; bounded at 1,200 messages (about 19 MiB).
    const payload = (i: number): string => `${String(i).padStart(6, "0")}:${"x".repeat(16 * 1024)}`;
    const slowClosed = async (): Promise<number> => {
      const m = /^sse_sessions_closed_total\{reason="slow"\} (\d+)/m.exec(await gw.metrics());
      return m ? Number(m[1]) : 0;
    };
    const published: number[] = [];
    for (let round = 0; round < 30 && (await slowClosed()) === 0; round++) {
      for (let i = 0; i < 40; i++) {
        published.push(await js.publish(subject, payload(published.length)));
      }
      await sleep(100);
    }
    await pollUntil('sse_sessions_closed_total{reason="slow"} >= 1', async () => {
      return (await slowClosed()) >= 1;
    });
    const last = published[published.length - 1] as number;

    // The reading client gets everything exactly once, in order (if it was itself judged slow
    // on this busy machine, its own reconnect with Last-Event-ID must still lose nothing).
    await reader.waitFor((ev) => messageIds(ev).includes(last), WAIT_MS * 2);
    await sleep(300);
    expect(messageIds(reader.events)).toEqual(published);
    expect(reader.events.every((e, i) => e.data === payload(i))).toBe(true);

    // Now read what the stalled client had been sent: the server must have ended it early.
    slow.resume();
    await pollUntil("the stalled client's connection to end", async () => slowEnded);
    const raw = Buffer.concat(chunks);
    const head = raw.indexOf("\r\n\r\n");
    const headText = raw.subarray(0, head).toString("latin1");
    expect(headText).toMatch(/^HTTP\/1\.1 200/);
    const rawBody = raw.subarray(head + 4);
    const chunked = /^transfer-encoding:\s*chunked/im.test(headText);
    const body = (chunked ? dechunk(rawBody) : rawBody).toString("utf8");
    const got = completeEventIds(body);
    // Evicted: it did not get everything; what it did get is a prefix of the stream.
    expect(got.length).toBeLessThan(published.length);
    expect(got).toEqual(published.slice(0, got.length));

    // The browser's reconnect: Last-Event-ID = the last event it fully received (0 if none).
    const lastSeen = got.length > 0 ? (got[got.length - 1] as number) : 0;
    const resumed = new SseRecorder(`${gw.url}/events/${subject}`, {
      headers: { "Last-Event-ID": String(lastSeen) },
    });
    recorders.push(resumed);
    await resumed.waitFor((ev) => messageIds(ev).includes(last), WAIT_MS * 2);
    await sleep(300);
    expect(messageIds(resumed.events)).toEqual(published.filter((s) => s > lastSeen));

    // A cursor from before the feed's recent window (it holds at most WINDOW_BYTES, 4 MiB) is
    // caught up by a replay consumer, which must respect the same byte bound.
    const replayedBefore = replayedEvents(await gw.metrics());
    const fromStart = new SseRecorder(`${gw.url}/events/${subject}`, {
      headers: { "Last-Event-ID": "0" },
    });
    recorders.push(fromStart);
    await fromStart.waitFor((ev) => messageIds(ev).includes(last), WAIT_MS * 2);
    await sleep(300);
    expect(messageIds(fromStart.events)).toEqual(published);
    expect(replayedEvents(await gw.metrics())).toBeGreaterThan(replayedBefore);
  });
});

function replayedEvents(metrics: string): number {
  const m = /^sse_replayed_events_total (\d+)/m.exec(metrics);
  return m ? Number(m[1]) : 0;
}
