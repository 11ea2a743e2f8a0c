/**
 * Sticky-free scaling, exercised (DESIGN invariants 1, 5 and 7; "Shutdown"): three gateway
 * pods behind haproxy (round robin, no affinity, new connections only to pods whose /readyz
 * answers 200), a publisher at a steady rate, 1,000 EventSource clients from 250 loopback
 * addresses, and two rolling updates done the way the Deployment controller does them, with the
 * numbers the chart renders. Every client must end with every message published since it
 * connected, once and in order: each starts at a known cursor (the last sequence published when
 * it was created, as `?lastEventId=`), the stream captures only the one subject, so its
 * sequences are consecutive and any skipped or repeated id is a lost or duplicated message.
 * Run `npm run build` first (the pods run dist/src/main.js).
 */
import { renderRolloutPlan } from "../support/rolloutPlan";
import { formatFigures, runRolloutScenario } from "../support/rolloutScenario";

/**
 * Values for the chart: three replicas as in the issue; a proxy in front (TRUST_PROXY, so the
 * per-client limit sees each client's own address); and time scaled down so the test takes
 * about a minute. Everything the driver waits for comes from the objects rendered with these.
 */
const VALUES = [
  "replicaCount=3",
  "config.trustProxy=true",
  "config.logLevel=warn",
  "config.drainWindowMs=3000",
  "config.shutdownTimeoutMs=8000",
  "lifecycle.preStopSleepSeconds=2",
  "rollout.minReadySeconds=1",
];
const CLIENTS = 1_000;
const ROUNDS = 2;

describe("rolling restarts behind a round-robin balancer without session affinity", () => {
  it("two rolling updates driven by the chart's values lose, repeat and reorder nothing for 1,000 clients", async () => {
    const plan = renderRolloutPlan(VALUES);
    const figures = await runRolloutScenario({
      plan,
      clients: CLIENTS,
      clientsPerAddress: 4,
      clientProcesses: 0,
      publishPerSecond: 20,
      rounds: ROUNDS,
      steadyMs: 2_000,
      timeLimitMs: 240_000,
      log: (line) => process.stdout.write(`[rollout] ${line}\n`),
    });
    console.log(formatFigures(figures, plan));

    // The rollout really happened, as the chart says: every pod replaced in every round, each
    // old one exiting 0 within its grace period. Every client started on one of the first
    // pods and only a drain moves it, so SIGTERM found each client on some pod at least once.
    expect(figures.restarts).toBe(plan.replicas * ROUNDS);
    expect(figures.terminations.map((t) => [t.pod, t.exitCode, t.inTime])).toEqual(
      figures.terminations.map((t) => [t.pod, 0, true]),
    );
    const atSigterm = figures.terminations.reduce((n, t) => n + t.sessionsAtSigterm, 0);
    expect(atSigterm).toBeGreaterThanOrEqual(CLIENTS);
    // Every client had to move, and did; and the balancer sent no request to a pod that could
    // not serve it: none draining (out of rotation before SIGTERM), none not yet ready, no
    // client limit hit (each client's own address arrives in X-Forwarded-For).
    expect(figures.reconnects.min).toBeGreaterThanOrEqual(1);
    expect(figures.shed).toEqual({});

    // Computed from the ids every client received.
    expect({
      clients: figures.clients,
      lost: figures.lost,
      duplicated: figures.duplicated,
      behind: figures.clientsBehind,
      gaveUp: figures.failures,
      mismatchedPayloads: figures.mismatchedPayloads,
      notices: figures.notices,
      wrongResumes: figures.wrongResumes,
    }).toEqual({
      clients: CLIENTS,
      lost: 0,
      duplicated: 0,
      behind: 0,
      gaveUp: [],
      mismatchedPayloads: 0,
      notices: 0,
      wrongResumes: 0,
    });
    expect(figures.deliveries).toBe(figures.expectedDeliveries);
  }, 300_000);
});
