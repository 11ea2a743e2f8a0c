/**
 * The built gateway as a real process (what `npm start` runs): graceful shutdown on SIGTERM
 * with a handoff to another instance (DESIGN invariants 5 and 7, "Shutdown"), and refusal to
 * start on bad configuration. Run `npm run build` first.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { startGatewayProcess, type GatewayProcess } from "../support/gateway";
import { connectJetStream, type TestJetStream } from "../support/jetstream";
import { messageIds, waitUntil } from "./contract-helpers";
import { startNats, type NatsHandle } from "../support/nats";
import { sleep, TailBuffer, trackChild, waitForExit } from "../support/process";
import { rawGet, readSseFor, SseRecorder } from "../support/sse-client";

jest.setTimeout(120_000);

const WAIT_MS = 30_000;
const REPO_ROOT = path.resolve(__dirname, "..", "..");
const MAIN = path.join(REPO_ROOT, "dist", "src", "main.js");

/** `waitUntil` with this file's argument order and bounds. */
const pollUntil = (
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs = WAIT_MS,
  everyMs = 50,
) => waitUntil(probe, what, timeoutMs, everyMs);

async function openSessions(gw: GatewayProcess): Promise<number> {
  const m = /^sse_sessions (\d+)/m.exec((await rawGet(`${gw.adminUrl}/metrics`)).body);
  return m ? Number(m[1]) : -1;
}

describe("when the gateway receives SIGTERM while a client streams", () => {
  let nats: NatsHandle;
  let js: TestJetStream;
  const gateways: GatewayProcess[] = [];
  const recorders: SseRecorder[] = [];

  beforeAll(async () => {
    nats = await startNats();
    js = await connectJetStream(nats.url);
    await js.addStream("RESSHUT", ["resshut.>"]);
  });

  afterAll(async () => {
    for (const r of recorders) r.close();
    await Promise.all(gateways.map((g) => g.stop()));
    await js?.close().catch(() => undefined);
    await nats?.close();
  });

  test("the instance drains and exits 0, and a resume on another instance continues without loss or duplicates", async () => {
    const subject = "resshut.ticks";
    const env = {
      NATS_URL: nats.url,
      DRAIN_WINDOW_MS: "1000",
      SHED_RETRY_MS: "500",
      RETRY_MS: "300",
      HEARTBEAT_MS: "1000",
    };
    const a = await startGatewayProcess(env);
    gateways.push(a);
    const b = await startGatewayProcess(env);
    gateways.push(b);
    expect(b.port).not.toBe(a.port);

    const first = new SseRecorder(`${a.url}/events/${subject}`);
    recorders.push(first);
    await first.waitFor(() => first.opens >= 1, WAIT_MS);
    // Raw readers of A's stream: one to see the bytes A ends it with, two more so that the
    // drain (each session closed at a random moment in the window) surely outlasts the probes.
    const sse = { Accept: "text/event-stream" };
    const rawStreams = [1, 2, 3].map(() => readSseFor(`${a.url}/events/${subject}`, WAIT_MS, sse));
    await pollUntil("A to hold four sessions", async () => (await openSessions(a)) === 4);

    // A publisher busy throughout: before, during and after the handoff.
    const published: number[] = [];
    const publishing = (async () => {
      for (let i = 0; i < 300; i++) {
        published.push(await js.publish(subject, `tick ${i}`));
        await sleep(10);
      }
    })();
    await pollUntil("100 messages published", async () => published.length >= 100);
    await first.waitFor((ev) => messageIds(ev).length >= 50, WAIT_MS);

    a.kill("SIGTERM");
    // Readiness turns false at once, while A still serves its draining sessions.
    const seen: string[] = [];
    await pollUntil(
      "A's /readyz to answer 503 during the drain",
      async () => {
        const res = await rawGet(`${a.adminUrl}/readyz`);
        seen.push(String(res.status));
        return res.status === 503;
      },
      WAIT_MS,
      5,
    );
    expect(seen.at(-1)).toBe("503");

    expect(await a.waitForExit(WAIT_MS)).toBe(0);

    // A ended each stream with a jittered `retry:` in [RETRY_MS/2, RETRY_MS*1.5): the drain
    // window already spreads these reconnects, so they need not wait as long as shed ones.
    for (const raw of await Promise.all(rawStreams)) {
      expect(raw.status).toBe(200);
      const lines = raw.text.trimEnd().split("\n");
      const m = /^retry: (\d+)$/.exec(lines.at(-1) ?? "");
      expect(m).not.toBeNull();
      const retry = Number(m?.[1]);
      expect(retry).toBeGreaterThanOrEqual(150);
      expect(retry).toBeLessThan(450);
    }

    // The first client has lost A (its reconnects to A are shed or refused). A browser behind a
    // Service reconnects to another pod with its Last-Event-ID: do exactly that against B.
    await first.waitFor(() => first.errors >= 1, WAIT_MS);
    first.close();
    const before = messageIds(first.events);
    expect(before.length).toBeGreaterThan(0);
    const lastId = before[before.length - 1] as number;

    const second = new SseRecorder(`${b.url}/events/${subject}`, {
      headers: { "Last-Event-ID": String(lastId) },
    });
    recorders.push(second);
    await publishing;
    expect(published).toHaveLength(300);
    const final = published[published.length - 1] as number;
    await second.waitFor((ev) => messageIds(ev).includes(final), WAIT_MS);
    await sleep(300);

    const after = messageIds(second.events);
    const all = [...before, ...after];
    expect(all).toEqual(published);
    for (let i = 1; i < all.length; i++) expect(all[i]).toBeGreaterThan(all[i - 1] as number);
    expect(second.events.filter((e) => e.type !== "message")).toEqual([]);
  });
});

describe("when the configuration is invalid", () => {
  test("the built gateway exits with code 2 and names every bad variable on stderr", async () => {
    const stderr = new TailBuffer(16 * 1024);
    const child = spawn(process.execPath, [MAIN], {
      cwd: REPO_ROOT,
      env: { ...process.env, PORT: "eighty", HEARTBEAT_MS: "1", LOG_LEVEL: "warn" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    trackChild(child);
    child.stderr?.on("data", (chunk: Buffer) => stderr.push(chunk));
    // `close` follows `exit` once stderr is read to its end.
    const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
    const code = await waitForExit(child, WAIT_MS);
    if (code === "timeout") child.kill("SIGKILL");
    expect(code).toBe(2);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise((resolve) => (timer = setTimeout(resolve, 5_000)))]);
    clearTimeout(timer);
    const text = stderr.toString();
    expect(text).toMatch(/\bPORT\b/);
    expect(text).toMatch(/\bHEARTBEAT_MS\b/);
  });
});
