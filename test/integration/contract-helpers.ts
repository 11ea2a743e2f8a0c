/**
 * Small helpers shared by the integration tests.
 * Everything here talks to the real gateway and the real nats-server; nothing is mocked.
 */
import net from "node:net";
import { randomBytes } from "node:crypto";
import { SseRecorder, type Received, type SseRecorderInit } from "../support/sse-client";
import type { TestJetStream } from "../support/jetstream";

let counter = 0;

/** A stream name and a subject prefix no other test (or test file) uses. */
export function unique(label: string): { stream: string; prefix: string } {
  counter++;
  const tag = `${label}${counter}${randomBytes(3).toString("hex")}`;
  return { stream: `C_${tag.toUpperCase()}`, prefix: tag.toLowerCase() };
}

/** Sleeps; only for pacing, never as a way to assert speed. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `check` every `everyMs` until it holds; throws `what` after `timeoutMs`. Bounded.
 * A check that throws counts as "not yet" (a server restarting refuses connections); the last
 * error is quoted if time runs out.
 */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
  everyMs = 20,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = "";
  const holds = async () => {
    try {
      return await check();
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
      return false;
    }
  };
  while (Date.now() < deadline) {
    if (await holds()) return;
    await sleep(everyMs);
  }
  if (await holds()) return;
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} ${lastError}`.trim());
}

/** Ids of the recorded message events (gateway notices excluded), as numbers. */
export function messageIds(events: readonly Received[]): number[] {
  return events.filter((e) => e.type === "message").map((e) => Number(e.id));
}

/**
 * Closes whatever a test opened, even when an assertion failed half-way. Tests register
 * recorders and other handles; afterEach/afterAll call closeAll.
 */
export class Tracker {
  private readonly closers: (() => unknown)[] = [];

  add<T extends { close(): unknown }>(thing: T): T {
    this.closers.push(() => thing.close());
    return thing;
  }

  async closeAll(): Promise<void> {
    const all = this.closers.splice(0).reverse();
    for (const close of all) {
      try {
        await close();
      } catch {
        // Best effort: one failing close must not leak the others.
      }
    }
  }
}

/** An SSE client that has received its response headers (the session exists server-side). */
export async function openRecorder(
  tracker: Tracker,
  url: string,
  init?: SseRecorderInit,
): Promise<SseRecorder> {
  const rec = tracker.add(new SseRecorder(url, init));
  await rec.waitFor(() => rec.opens >= 1, 10_000);
  return rec;
}

/** The numeric ids of received events. */
export function idsOf(events: readonly Received[]): number[] {
  return events.map((e) => Number(e.id));
}

/** Waits until an event with this id has arrived (every earlier frame was written before it). */
export function waitForId(rec: SseRecorder, id: number, timeoutMs = 15_000): Promise<void> {
  return rec.waitFor((events) => events.some((e) => Number(e.id) === id), timeoutMs);
}

/** Publishes `n` messages on `subject` (awaiting each ack, so sequences are in order). */
export async function publishMany(
  js: TestJetStream,
  subject: string,
  n: number,
  label = subject,
): Promise<number[]> {
  const seqs: number[] = [];
  for (let i = 0; i < n; i++) seqs.push(await js.publish(subject, `${label}#${i}`));
  return seqs;
}

/** Sum of a Prometheus metric's samples (all label sets) in exposition text; 0 when absent. */
export function metricValue(text: string, name: string, labels?: Record<string, string>): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    if (labels) {
      const set = m[2] ?? "";
      if (!Object.entries(labels).every(([k, v]) => set.includes(`${k}="${v}"`))) continue;
    }
    sum += Number(m[3]);
  }
  return sum;
}

/** Parses a JSON error body and checks its shape `{ error, message }`. */
export function errorBody(body: string): { error: string; message: string } {
  const parsed = JSON.parse(body) as { error?: unknown; message?: unknown };
  if (typeof parsed.error !== "string" || typeof parsed.message !== "string")
    throw new Error(`not an error body: ${body}`);
  return { error: parsed.error, message: parsed.message };
}

/**
 * Publishes one message through the raw NATS protocol with a header block written byte for
 * byte. nats.js refuses CR and LF in header values, but another client (or a hand-written
 * one) can put a bare LF or CR inside a header line, which nats.js then decodes into the
 * value: exactly what a hostile publisher would try. Returns the stream sequence from the ack.
 */
export async function rawPublishWithHeaderBlock(
  natsUrl: string,
  subject: string,
  headerBlock: string,
  payload: string,
  timeoutMs = 5_000,
): Promise<number> {
  const { hostname, port } = new URL(natsUrl);
  const inbox = `_INBOX.rawpub.${randomBytes(6).toString("hex")}`;
  const hdr = Buffer.from(headerBlock, "utf8");
  const body = Buffer.from(payload, "utf8");
  const socket = net.connect(Number(port), hostname);
  try {
    return await new Promise<number>((resolve, reject) => {
      let buf = Buffer.alloc(0);
      let sent = false;
      const timer = setTimeout(
        () => reject(new Error(`raw publish: no ack within ${timeoutMs} ms: ${buf.toString()}`)),
        timeoutMs,
      );
      const done = (err: Error | undefined, seq?: number) => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(seq as number);
      };
      socket.on("error", (err) => done(err));
      socket.on("data", (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        const text = buf.toString("latin1");
        if (!sent && text.includes("\r\n")) {
          sent = true; // INFO arrived: speak
          socket.write(
            `CONNECT {"verbose":false,"pedantic":false,"headers":true,"protocol":1}\r\n` +
              `SUB ${inbox} 1\r\n` +
              `HPUB ${subject} ${inbox} ${hdr.length} ${hdr.length + body.length}\r\n`,
          );
          socket.write(Buffer.concat([hdr, body, Buffer.from("\r\n")]));
          socket.write("PING\r\n");
        }
        if (text.includes("-ERR")) return done(new Error(`raw publish refused: ${text}`));
        if (text.includes("PING\r\n")) socket.write("PONG\r\n");
        const m = /MSG \S+ 1 (\d+)\r\n/.exec(text);
        if (!m) return;
        const start = (m.index ?? 0) + m[0].length;
        const len = Number(m[1]);
        if (text.length < start + len) return;
        const ack = JSON.parse(text.slice(start, start + len)) as { seq?: number; error?: unknown };
        if (typeof ack.seq !== "number")
          return done(new Error(`raw publish: bad ack ${JSON.stringify(ack)}`));
        done(undefined, ack.seq);
      });
    });
  } finally {
    socket.destroy();
  }
}

/** Asserts that ids are strictly increasing (each message once, in order). */
export function expectStrictlyIncreasing(ids: readonly number[]): void {
  for (let i = 1; i < ids.length; i++) {
    if (!((ids[i] as number) > (ids[i - 1] as number)))
      throw new Error(
        `ids not strictly increasing at index ${i}: ${ids[i - 1]} then ${ids[i]} (around: ${ids
          .slice(Math.max(0, i - 5), i + 5)
          .join(",")})`,
      );
  }
}
