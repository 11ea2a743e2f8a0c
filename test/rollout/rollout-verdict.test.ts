/**
 * The rolling-restart test's own instruments, checked against known input: the plan follows the
 * chart's values, and a client that is sent skipped, repeated or reordered ids is judged as
 * having lost or duplicated messages (so the big test can fail).
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { renderRolloutPlan } from "../support/rolloutPlan";
import { ClientFleet, payloadFor } from "../support/rolloutClients";
import { analyse } from "../support/rolloutScenario";
import { sleep } from "../support/process";

describe("the rollout plan", () => {
  it("takes every timing from the chart as rendered with the given values", () => {
    const plan = renderRolloutPlan([
      "replicaCount=4",
      "rollout.maxSurge=2",
      "rollout.minReadySeconds=3",
      "lifecycle.preStopSleepSeconds=4",
      "config.shutdownTimeoutMs=12500",
      "config.drainWindowMs=6000",
      "probes.readiness.periodSeconds=7",
    ]);
    expect(plan).toMatchObject({
      replicas: 4,
      maxSurge: 2,
      maxUnavailable: 0,
      minReadySeconds: 3,
      preStopSeconds: 4,
      // Derived by the chart: preStop + ceil(SHUTDOWN_TIMEOUT_MS / 1000) + 5.
      gracePeriodSeconds: 4 + 13 + 5,
      readinessPath: "/readyz",
      readinessPeriodSeconds: 7,
    });
    expect(plan.env).toMatchObject({ DRAIN_WINDOW_MS: "6000", SHUTDOWN_TIMEOUT_MS: "12500" });
  });
});

describe("the client verdict", () => {
  let server: Server;
  const fleet = new ClientFleet();

  afterAll(async () => {
    fleet.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it("counts skipped ids as lost, repeated or reordered ids as duplicated, and wrong payloads", async () => {
    const frame = (id: number, n = id - 1): string => `id: ${id}\ndata: ${payloadFor(n, 0)}\n\n`;
    const seen: Array<string | undefined> = [];
    server = createServer((req, res) => {
      seen.push(req.headers["last-event-id"] as string | undefined);
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      // First connection: 3 is skipped, then the stream ends; the client comes back after 4.
      if (seen.length === 1) return res.end(`retry: 50\n\n${frame(1)}${frame(2)}${frame(4)}`);
      // The reconnect repeats 4, sends 3 late, and 5 with another message's payload.
      res.write(`${frame(4)}${frame(3)}${frame(5, 7)}`);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;

    await fleet.open({
      url: `http://127.0.0.1:${port}/events/x`,
      count: 1,
      firstIndex: 0,
      cursor: 0,
      clientsPerAddress: 1,
    });
    const deadline = Date.now() + 10_000;
    while ((fleet.summaries()[0]?.received ?? 0) < 6 && Date.now() < deadline) await sleep(20);

    const [summary] = fleet.summaries();
    expect(seen).toEqual([undefined, "4"]);
    expect(summary).toMatchObject({
      source: "127.10.0.1",
      received: 6,
      lastId: 5,
      gaps: 1,
      repeats: 2,
      mismatched: 1,
      requests: 2,
      resumes: 1,
      wrongResumes: 0,
      opens: 2,
    });
    const verdict = analyse(fleet.summaries(), 6);
    expect(verdict).toMatchObject({
      lost: 2, // 3 skipped (it came late, as a repeat), 6 never came
      duplicated: 2,
      clientsWithLoss: 1,
      clientsBehind: 1,
      expectedDeliveries: 6,
      deliveries: 6,
      mismatchedPayloads: 1,
      reconnects: { mean: 1, min: 1, max: 1, total: 1, resumes: 1 },
    });
  });
});
