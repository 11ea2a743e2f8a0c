/**
 * A second SIGTERM (or Ctrl-C twice) during the drain: the built gateway as a real process, a
 * real nats-server, real HTTP. Exiting at once would drop every client without a `retry:`, and
 * they would all reconnect to the other pods at the same moment.
 */
import { startGatewayProcess, type GatewayProcess } from "../support/gateway";
import { connectJetStream, type TestJetStream } from "../support/jetstream";
import { startNats, type NatsHandle } from "../support/nats";
import { rawGet, readSseFor } from "../support/sse-client";
import { metricValue, unique, waitUntil } from "./contract-helpers";

jest.setTimeout(120_000);

let nats: NatsHandle;
let js: TestJetStream;
let gw: GatewayProcess | undefined;

beforeAll(async () => {
  nats = await startNats();
  js = await connectJetStream(nats.url);
});

afterAll(async () => {
  await gw?.stop();
  await js?.close();
  await nats?.close();
});

describe("when a second signal arrives during the drain", () => {
  it("shutdown - every session is closed at once with its own jittered retry:, flushed, then the process exits", async () => {
    const { stream, prefix } = unique("second");
    await js.addStream(stream, [`${prefix}.>`]);
    const subject = `${prefix}.t`;
    // A drain window far longer than the test: what closes the sessions is the second signal.
    gw = await startGatewayProcess({
      NATS_URL: nats.url,
      DRAIN_WINDOW_MS: "60000",
      SHUTDOWN_TIMEOUT_MS: "90000",
      SHED_RETRY_MS: "1000",
    });
    const g = gw;
    const n = 40;
    const streams = Array.from({ length: n }, () =>
      readSseFor(`${g.url}/events/${subject}`, 60_000, { Accept: "text/event-stream" }),
    );
    await waitUntil(
      async () => metricValue((await rawGet(`${g.adminUrl}/metrics`)).body, "sse_sessions") === n,
      `${n} open sessions`,
    );
    const seq = await js.publish(subject, "before the signals");

    g.kill("SIGTERM");
    await waitUntil(
      async () => (await rawGet(`${g.adminUrl}/readyz`)).status === 503,
      "readiness to fail (the drain has begun)",
    );
    g.kill("SIGTERM");
    expect(await g.waitForExit(30_000)).toBe(1);

    const retries: number[] = [];
    for (const s of await Promise.all(streams)) {
      expect(s.status).toBe(200);
      // Everything sent before, then the retry: hint as the stream's last field.
      expect(s.text).toContain(`id: ${seq}\ndata: before the signals\n\n`);
      const m = /\nretry: (\d+)\n\n$/.exec(s.text);
      expect(m).not.toBeNull();
      retries.push(Number(m?.[1]));
    }
    // Jittered around SHED_RETRY_MS: [500, 1500), and not one value for all.
    for (const r of retries) {
      expect(r).toBeGreaterThanOrEqual(500);
      expect(r).toBeLessThan(1_500);
    }
    expect(new Set(retries).size).toBeGreaterThan(1);
    expect(g.logs()).toContain("second signal; closing every session now");
  });
});
