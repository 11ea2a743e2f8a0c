/**
 * Sticky-free scaling, exercised: a real nats-server with a stream capturing one subject, a
 * publisher at a steady rate, gateway pods behind haproxy (round robin, readiness checks, no
 * affinity), many EventSource clients, and rolling restarts driven by the chart's rendered
 * values. Shared by the Jest test (`test/rollout/`) and the larger `make rollout` benchmark;
 * it measures and reports, the callers decide what must hold.
 */
import type { JetStreamClient } from "@nats-io/jetstream";
import { startHaproxy, type Haproxy } from "./haproxy";
import { connectJetStream, type TestJetStream } from "./jetstream";
import { startNats, type NatsHandle } from "./nats";
import { sleep } from "./process";
import {
  forkedFleet,
  localFleet,
  payloadFor,
  type ClientSummary,
  type Fleet,
  type FleetProgress,
} from "./rolloutClients";
import { GatewayDeployment, type Termination } from "./rolloutDeployment";
import type { RolloutPlan } from "./rolloutPlan";

export const STREAM = "ROLLOUT";
/** The stream captures this subject only, so its sequences are consecutive: 1, 2, 3, … */
export const SUBJECT = "rollout.ticks";

export interface ScenarioOptions {
  plan: RolloutPlan;
  clients: number;
  /** Clients sharing one loopback source address (the gateway limits connections per address). */
  clientsPerAddress: number;
  /** 0: clients live in this process; otherwise in that many child processes (compiled only). */
  clientProcesses: number;
  publishPerSecond: number;
  /** Rolling updates, one after the other; each replaces every pod once. */
  rounds: number;
  /** Publishing with every client receiving, before the first rolling update, ms. */
  steadyMs: number;
  /** Bound of the whole run: the publisher stops by then whatever happens, ms. */
  timeLimitMs: number;
  log(line: string): void;
}

export interface RolloutFigures {
  clients: number;
  /** Messages published (the stream's last sequence). */
  messages: number;
  /** Messages every client had to receive, summed, and what they received. */
  expectedDeliveries: number;
  deliveries: number;
  lost: number;
  duplicated: number;
  clientsWithLoss: number;
  clientsWithDuplicates: number;
  /** Clients that had not reached the last sequence when the wait ended. */
  clientsBehind: number;
  /** EventSources that gave up (a non-200 answer), and the reasons they gave. */
  clientsFailed: number;
  failures: string[];
  mismatchedPayloads: number;
  notices: number;
  /** Reconnects whose Last-Event-ID was not the last id the client had received. */
  wrongResumes: number;
  publishIntervalMs: number;
  /** Longest silence between two messages, per client: the worst, the median, the 99th percentile. */
  longestGapMs: { max: number; p50: number; p99: number };
  /** Reconnects per client (requests after the first), and how many sent Last-Event-ID. */
  reconnects: { mean: number; min: number; max: number; total: number; resumes: number };
  /** Streams that opened and carried no message (drained or shed before the next message). */
  emptyStreams: number;
  restarts: number;
  terminations: Termination[];
  /** Sheds by reason over all pods (`sse_requests_shed_total`). */
  shed: Record<string, number>;
  /** Start of the first rolling update to the last old pod gone, ms. */
  rolloutMs: number;
  /** The whole run, ms. */
  durationMs: number;
}

/** Publishes `n payload` at a fixed rate (no drift), bounded in count; stops on request. */
class Publisher {
  lastSeq = 0;
  private stopped = false;
  private readonly done: Promise<void>;
  error: Error | undefined;

  constructor(js: JetStreamClient, perSecond: number, maxMessages: number) {
    const intervalMs = 1000 / perSecond;
    const t0 = Date.now();
    this.done = (async () => {
      for (let n = 0; n < maxMessages && !this.stopped; n++) {
        await sleep(Math.max(0, t0 + n * intervalMs - Date.now()));
        if (this.stopped) break;
        // The message id makes a retried publish idempotent: the stream keeps one copy and
        // its sequences stay consecutive.
        let seq = 0;
        for (let attempt = 1; seq === 0; attempt++) {
          try {
            const ack = await js.publish(SUBJECT, payloadFor(n, Date.now()), { msgID: `m${n}` });
            seq = ack.seq;
          } catch (err) {
            if (attempt >= 5) throw err;
            await sleep(200);
          }
        }
        if (seq !== n + 1) throw new Error(`message ${n} got sequence ${seq}, not ${n + 1}`);
        this.lastSeq = seq;
      }
    })().catch((err: unknown) => {
      this.error = err instanceof Error ? err : new Error(String(err));
    });
  }

  /** Stops and resolves with the last sequence published. */
  async stop(): Promise<number> {
    this.stopped = true;
    await this.done;
    if (this.error) throw this.error;
    return this.lastSeq;
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/** The verdict, from what the clients received (nothing assumed). */
export function analyse(
  summaries: ClientSummary[],
  finalSeq: number,
): Omit<
  RolloutFigures,
  "restarts" | "terminations" | "shed" | "rolloutMs" | "durationMs" | "publishIntervalMs"
> {
  let lost = 0;
  let duplicated = 0;
  let clientsWithLoss = 0;
  let clientsWithDuplicates = 0;
  let clientsBehind = 0;
  let expectedDeliveries = 0;
  let deliveries = 0;
  let mismatchedPayloads = 0;
  let notices = 0;
  let wrongResumes = 0;
  let emptyStreams = 0;
  let reconnectsTotal = 0;
  let reconnectsMin = Infinity;
  let reconnectsMax = 0;
  let resumes = 0;
  const failures: string[] = [];
  for (const s of summaries) {
    // Skipped ids, plus whatever never came after the last one received.
    const missing = s.gaps + Math.max(0, finalSeq - s.lastId);
    lost += missing;
    if (missing > 0) clientsWithLoss++;
    duplicated += s.repeats;
    if (s.repeats > 0) clientsWithDuplicates++;
    if (s.lastId < finalSeq) clientsBehind++;
    expectedDeliveries += finalSeq - s.cursor;
    deliveries += s.received;
    mismatchedPayloads += s.mismatched;
    notices += s.notices;
    wrongResumes += s.wrongResumes;
    emptyStreams += s.emptyStreams;
    const reconnects = Math.max(0, s.requests - 1);
    reconnectsTotal += reconnects;
    reconnectsMin = Math.min(reconnectsMin, reconnects);
    reconnectsMax = Math.max(reconnectsMax, reconnects);
    resumes += s.resumes;
    if (s.failure !== undefined) failures.push(`client ${s.index} (${s.source}): ${s.failure}`);
  }
  const gaps = summaries.map((s) => s.maxGapMs).sort((a, b) => a - b);
  return {
    clients: summaries.length,
    messages: finalSeq,
    expectedDeliveries,
    deliveries,
    lost,
    duplicated,
    clientsWithLoss,
    clientsWithDuplicates,
    clientsBehind,
    clientsFailed: failures.length,
    failures: failures.slice(0, 10),
    mismatchedPayloads,
    notices,
    wrongResumes,
    longestGapMs: { max: gaps.at(-1) ?? 0, p50: percentile(gaps, 50), p99: percentile(gaps, 99) },
    reconnects: {
      mean: summaries.length ? reconnectsTotal / summaries.length : 0,
      min: summaries.length ? reconnectsMin : 0,
      max: reconnectsMax,
      total: reconnectsTotal,
      resumes,
    },
    emptyStreams,
  };
}

/** The figures as a few lines of text. */
export function formatFigures(f: RolloutFigures, plan: RolloutPlan): string {
  const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
  const exits = f.terminations.map((t) => `${t.exitCode}@${s(t.exitMs)}`).join(" ");
  const shed = Object.entries(f.shed)
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");
  return [
    `rolling restart behind haproxy: ${f.clients} clients, ${f.messages} messages`,
    `  plan (rendered chart): replicas ${plan.replicas}, maxSurge ${plan.maxSurge}, ` +
      `maxUnavailable ${plan.maxUnavailable}, minReadySeconds ${plan.minReadySeconds}, ` +
      `preStop ${plan.preStopSeconds} s, grace ${plan.gracePeriodSeconds} s, readiness every ` +
      `${plan.readinessPeriodSeconds} s; DRAIN_WINDOW_MS ${plan.env.DRAIN_WINDOW_MS}, ` +
      `SHUTDOWN_TIMEOUT_MS ${plan.env.SHUTDOWN_TIMEOUT_MS}, SHED_RETRY_MS ${plan.env.SHED_RETRY_MS}`,
    `  deliveries ${f.deliveries} of ${f.expectedDeliveries} expected; lost ${f.lost} ` +
      `(${f.clientsWithLoss} clients), duplicated ${f.duplicated} (${f.clientsWithDuplicates} clients), ` +
      `behind at the end ${f.clientsBehind}, gave up ${f.clientsFailed}`,
    `  longest gap per client: max ${s(f.longestGapMs.max)}, p99 ${s(f.longestGapMs.p99)}, ` +
      `median ${s(f.longestGapMs.p50)} (publish interval ${f.publishIntervalMs.toFixed(0)} ms)`,
    `  reconnects per client: mean ${f.reconnects.mean.toFixed(2)}, min ${f.reconnects.min}, ` +
      `max ${f.reconnects.max} (total ${f.reconnects.total}, ${f.reconnects.resumes} with ` +
      `Last-Event-ID; ${f.emptyStreams} streams ended before a message); ` +
      `wrong Last-Event-ID ${f.wrongResumes}, notices ${f.notices}, bad payloads ${f.mismatchedPayloads}`,
    `  restarts ${f.restarts}; exits (code@SIGTERM→exit) ${exits}; sheds: ${shed || "none"}`,
    `  rollout ${s(f.rolloutMs)}, whole run ${s(f.durationMs)}`,
  ].join("\n");
}

/** Polls `probe` until it holds; throws `what` with the last progress after `timeoutMs`. */
async function until<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T>,
  holds: (v: T) => boolean,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (holds(v)) return v;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}: ${JSON.stringify(v)}`);
    }
    await sleep(250);
  }
}

export async function runRolloutScenario(opts: ScenarioOptions): Promise<RolloutFigures> {
  const { plan, log } = opts;
  const began = Date.now();
  const envNumber = (key: string): number => {
    const v = Number(plan.env[key]);
    if (!Number.isFinite(v)) throw new Error(`the chart's ConfigMap has no numeric ${key}`);
    return v;
  };
  const heartbeatMs = envNumber("HEARTBEAT_MS");
  const shedRetryMs = envNumber("SHED_RETRY_MS");
  const drainWindowMs = envNumber("DRAIN_WINDOW_MS");

  let nats: NatsHandle | undefined;
  let js: TestJetStream | undefined;
  let haproxy: Haproxy | undefined;
  let deployment: GatewayDeployment | undefined;
  let fleet: Fleet | undefined;
  let publisher: Publisher | undefined;
  try {
    nats = await startNats();
    js = await connectJetStream(nats.url);
    await js.addStream(STREAM, [SUBJECT]);

    haproxy = await startHaproxy({
      // Each pod gets a slot of its own: the first ReplicaSet and every replacement.
      slots: plan.replicas * (1 + opts.rounds),
      health: {
        path: plan.readinessPath,
        intervalMs: plan.readinessPeriodSeconds * 1000,
        timeoutMs: plan.readinessTimeoutSeconds * 1000,
        fall: plan.failureThreshold,
        rise: plan.successThreshold,
      },
      // A client holds one frontend connection (and haproxy one towards a pod) at a time;
      // half as many again for reconnects overlapping closes.
      maxConnections: Math.ceil(opts.clients * 1.5) + 500,
      streamTimeoutMs: Math.max(10 * heartbeatMs, 600_000),
    });
    deployment = new GatewayDeployment({
      plan,
      haproxy,
      // Loopback only; everything else is the chart's ConfigMap.
      env: { NATS_URL: nats.url, HOST: "127.0.0.1", ADMIN_HOST: "127.0.0.1" },
      log,
    });
    await deployment.create();
    log(`haproxy on ${haproxy.url}, ${plan.replicas} pods in rotation`);

    const maxMessages = Math.ceil((opts.timeLimitMs / 1000) * opts.publishPerSecond);
    publisher = new Publisher(js.js, opts.publishPerSecond, maxMessages);
    await until(
      "the first message",
      30_000,
      async () => publisher?.lastSeq ?? 0,
      (n) => n > 0,
    );

    fleet = opts.clientProcesses > 0 ? forkedFleet(opts.clientProcesses) : localFleet();
    const f = fleet;
    await f.open(
      `${haproxy.url}/events/${SUBJECT}`,
      opts.clients,
      publisher.lastSeq,
      opts.clientsPerAddress,
    );
    const openBoundMs = 60_000 + opts.clients * 10;
    await until(
      "every client to open and receive",
      openBoundMs,
      () => f.progress(publisher?.lastSeq ?? 0),
      (p: FleetProgress) => p.receiving === opts.clients || p.failed > 0,
    );
    log(`${opts.clients} clients open and receiving (sequence ${publisher.lastSeq})`);
    await sleep(opts.steadyMs);

    const rolloutBegan = Date.now();
    for (let round = 1; round <= opts.rounds; round++) {
      log(`rolling update ${round} of ${opts.rounds}`);
      await deployment.roll();
    }
    const terminations = await deployment.terminated();
    const rolloutMs = Date.now() - rolloutBegan;
    log(`rollout done: ${terminations.length} pods replaced in ${rolloutMs} ms`);

    const finalSeq = await publisher.stop();
    // A client may be waiting out a drain's jittered retry (up to 1.5 × SHED_RETRY_MS) or
    // catching up; past this bound it is counted as behind, never waited for forever.
    const catchUpMs = 1.5 * shedRetryMs + drainWindowMs + 30_000;
    const progress = await until(
      `every client to reach sequence ${finalSeq}`,
      catchUpMs,
      () => f.progress(finalSeq),
      (p: FleetProgress) => p.caughtUp + p.failed === p.clients,
    ).catch(async (err: unknown) => {
      log(String(err));
      return f.progress(finalSeq);
    });
    log(`${progress.caughtUp} of ${progress.clients} clients reached sequence ${finalSeq}`);
    // A repeat would arrive right after the last message: give it a moment to show up.
    await sleep(500);

    const summaries = await f.summaries();
    await f.close();
    await deployment.stop();
    return {
      ...analyse(summaries, finalSeq),
      publishIntervalMs: 1000 / opts.publishPerSecond,
      restarts: terminations.length,
      terminations,
      shed: deployment.shedByReason(),
      rolloutMs,
      durationMs: Date.now() - began,
    };
  } finally {
    await fleet?.close().catch(() => undefined);
    await publisher?.stop().catch(() => undefined);
    await deployment?.stop().catch(() => undefined);
    await haproxy?.stop().catch(() => undefined);
    await js?.close().catch(() => undefined);
    await nats?.close().catch(() => undefined);
  }
}
