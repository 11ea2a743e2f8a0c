/**
 * `make bench`: the gateway's benchmarks, each printing its figures (never asserting them).
 *
 *   npm run bench -- [fanout] [steady] [tracing] [memory] [storm] [auth] [deep] [capacity]
 *                    [--clients 2000,10000] [--messages 100] [--rounds 7] [--steady-clients 2000]
 *                    [--steady-interval-ms 50,10] [--steady-seconds 10] [--tracing-clients 2000]
 *                    [--storm-clients 5000] [--storm-spread 3000] [--deep 100000] [--workers 2]
 *                    [--capacity-clients 19000]
 *
 * No scenario named: all of them. `steady` is steady traffic instead of bursts: gateway, naive
 * and ideal each hold `--steady-clients` connections while one message is published every
 * interval (each of `--steady-interval-ms`) for `--steady-seconds` after a 2 s warm-up, on a
 * drift-free schedule (absolute due times; publishes pipelined, at most 16 awaiting their ack);
 * per kind: deliveries, server CPU per delivery alone and with nats-server's, p50/p99 latency
 * and RSS growth over the measured period. Fan-out and steady also run nginx + Nchan (`nchan`,
 * bench/references/nchan.ts) when installed (`make bench` installs it): its own EventSource
 * ids, fed by a bridge process (one ordered consumer, one HTTP POST per message to Nchan's
 * publisher) whose CPU is reported apart and with nginx's; `memory` measures it too.
 * `tracing` is the gateway's fan-out with OpenTelemetry tracing off, on, off, on (OTLP/HTTP to
 * a local sink process; every message carries a W3C traceparent in both modes), medians per
 * mode and the on/off ratios. `auth` is the in-window reconnect storm
 * (`--storm-clients`) with authorization off, HS256 and ES256, one token per client.
 *
 * Everything runs on 127.0.0.1: one nats-server, the server under test in its own process, and
 * load clients in their own processes (raw sockets; HTTP chunking and SSE decoded for real).
 */
import { randomBytes } from "node:crypto";
import { capacity } from "./capacity";
import os from "node:os";
import {
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { startNats, type NatsHandle } from "../test/support/nats";
import { freePort } from "../test/support/ports";
import { median, nowMs } from "./lib/histogram";
import { forkOtlpSink, type SinkCounts } from "./lib/otlpSink";
import { LoadPool } from "./lib/pool";
import { cpuMs, findPid, rss, sleep, startServer, type ServerProc } from "./lib/procs";
import { findNchan, startNchan } from "./references/nchan";
import { publishSteady } from "./lib/steady";
import { es256Key, hs256Key, mintTokens } from "./lib/tokens";

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? (args[i + 1] ?? def) : def;
};
const chosen = args.filter((a, i) => !a.startsWith("--") && !(args[i - 1] ?? "").startsWith("--"));
const want = (name: string) => chosen.length === 0 || chosen.includes(name);

const CLIENTS = opt("clients", "2000,10000").split(",").map(Number);
const TRACING_CLIENTS = opt("tracing-clients", "2000").split(",").map(Number);
const MESSAGES = Number(opt("messages", "100"));
const ROUNDS = Number(opt("rounds", "7"));
const WARMUP = 2;
const STORM_CLIENTS = Number(opt("storm-clients", "5000"));
const STORM_SPREAD = Number(opt("storm-spread", "3000"));
const DEEP = Number(opt("deep", "100000"));
const WORKERS = Number(opt("workers", "2"));
const STEADY_CLIENTS = Number(opt("steady-clients", "2000"));
const STEADY_INTERVALS = opt("steady-interval-ms", "50,10").split(",").map(Number);
const STEADY_SECONDS = Number(opt("steady-seconds", "10"));
const STEADY_WARMUP_SECONDS = 2;
/** Steady publishes awaiting their JetStream ack at once, at most (see publishSteady). */
const STEADY_IN_FLIGHT = 16;
const STREAM = "BENCH";

type Kind = "gateway" | "naive" | "ideal" | "idle" | "nchan";

/**
 * The kinds of the fan-out and steady scenarios: `nchan` (nginx + Nchan, fed by a bridge) only
 * when nginx and its Nchan module are installed (`make bench` installs them), else a note says
 * why it was left out.
 */
function referenceKinds(): Kind[] {
  const found = findNchan();
  if ("missing" in found) {
    log(`nchan: left out: ${found.missing}`);
    return ["gateway", "naive", "ideal"];
  }
  return ["gateway", "naive", "ideal", "nchan"];
}

interface Ctx {
  nats: NatsHandle;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
}

function log(line = ""): void {
  process.stdout.write(line + "\n");
}

const fmt = (n: number, digits = 0) =>
  Number.isFinite(n)
    ? n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : "n/a";

async function startKind(
  kind: Kind,
  ctx: Ctx,
  subject: string,
  extra: Record<string, string> = {},
  burst = MESSAGES,
): Promise<ServerProc> {
  const port = await freePort();
  if (kind === "nchan") {
    // nginx + Nchan, and the bridge feeding its publisher location from the same JetStream
    // subject (one ordered consumer, one HTTP POST per message over a keep-alive connection).
    const nginx = await startNchan(port);
    try {
      const bridge = await startServer(
        "bench/references/nchanBridge.js",
        { NATS_URL: ctx.nats.url, STREAM, SUBJECT: subject, NCHAN_PORT: String(port) },
        await freePort(),
      );
      return {
        ...nginx,
        bridge,
        stop: async () => {
          await bridge.stop();
          await nginx.stop();
        },
      };
    } catch (err) {
      await nginx.stop();
      throw err;
    }
  }
  if (kind === "gateway") {
    const adminPort = await freePort();
    const server = await startServer(
      "src/main.js",
      {
        NATS_URL: ctx.nats.url,
        ADMIN_PORT: String(adminPort),
        LOG_LEVEL: "warn",
        MAX_CONNECTIONS: "50000",
        MAX_CONNECTIONS_PER_CLIENT: "50000",
        // Every load client comes from 127.0.0.1: they stand for distinct browsers.
        REPLAY_MAX_PER_CLIENT: "50000",
        HEARTBEAT_MS: "3600000",
        DRAIN_WINDOW_MS: "0",
        ...extra,
      },
      port,
      adminPort,
    );
    server.adminPort = adminPort;
    return server;
  }
  return startServer(
    "bench/references/bareServer.js",
    { NATS_URL: ctx.nats.url, MODE: kind, STREAM, SUBJECT: subject, BURST: String(burst) },
    port,
  );
}

/** A valid W3C trace context, random for every call: `00-<trace id>-<parent id>-01` (sampled). */
function randomTraceparent(): string {
  const hex = randomBytes(24).toString("hex");
  return `00-${hex.slice(0, 32)}-${hex.slice(32)}-01`;
}

/**
 * Opens `clients` fresh subscriptions (no cursor) to `subject` on `server`, 256 at a time, and
 * lets them settle for 500 ms; throws unless every one connected.
 */
async function openFresh(
  pool: LoadPool,
  server: ServerProc,
  kind: string,
  subject: string,
  clients: number,
): Promise<void> {
  const opened = await pool.open(
    server.port,
    `/events/${subject}`,
    new Array(clients).fill(null),
    256,
  );
  if (opened.ok !== clients)
    throw new Error(
      `${kind}: only ${opened.ok} of ${clients} connected: ${JSON.stringify(opened.statuses)}`,
    );
  await sleep(500);
}

/**
 * Publishes `count` messages as fast as JetStream takes them (pipelined), returns the last seq.
 * With `traceparent`, every message carries a `traceparent` header of its own.
 */
async function publishBurst(
  js: JetStreamClient,
  subject: string,
  count: number,
  round: number,
  traceparent = false,
): Promise<number> {
  const pad = "x".repeat(48);
  const acks = [];
  for (let i = 0; i < count; i++) {
    const payload = `t=${nowMs()};r=${round};i=${i};${pad}`;
    if (traceparent) {
      const h = headers();
      h.set("traceparent", randomTraceparent());
      acks.push(js.publish(subject, payload, { headers: h }));
    } else acks.push(js.publish(subject, payload));
  }
  const done = await Promise.all(acks);
  return Math.max(...done.map((a) => a.seq));
}

/** Fills a subject with `count` messages in pipelined batches; returns the last sequence. */
async function fill(js: JetStreamClient, subject: string, count: number): Promise<number> {
  let last = 0;
  for (let i = 0; i < count; i += 1000)
    last = await publishBurst(js, subject, Math.min(1000, count - i), -1);
  return last;
}

/** The measured rounds of one fan-out run (one server process, WARMUP + ROUNDS bursts). */
interface FanoutRun {
  clients: number;
  rates: number[];
  p50s: number[];
  p99s: number[];
  /** Clients that got their whole burst, summed over the measured rounds. */
  complete: number;
  /** CPU of the server, and of the load clients, over the measured rounds, in ms. */
  cpu: number;
  clientCpu: number;
  /** CPU of the server's bridge process (nchan's), in ms; 0 for the others. */
  bridgeCpu: number;
}

interface FanoutRow {
  rate: number;
  p50: number;
  p99: number;
  complete: string;
  cpu: number;
  clientCpu: number;
  /** The bridge's CPU per delivery (nchan's), in µs; 0 when there is none. */
  bridgeCpu: number;
}

/**
 * Starts `kind` (with `extra` env), opens `clients` connections on `subject`, publishes
 * WARMUP + ROUNDS bursts of MESSAGES and stops the server again (so, for the gateway, whatever it
 * flushes at shutdown has been flushed when this returns).
 */
async function measureFanout(
  ctx: Ctx,
  kind: Kind,
  clients: number,
  subject: string,
  extra: Record<string, string> = {},
  traceparent = false,
): Promise<FanoutRun> {
  const server = await startKind(kind, ctx, subject, extra);
  const pool = new LoadPool(WORKERS);
  try {
    await openFresh(pool, server, kind, subject, clients);
    const run: FanoutRun = {
      clients,
      rates: [],
      p50s: [],
      p99s: [],
      complete: 0,
      cpu: 0,
      clientCpu: 0,
      bridgeCpu: 0,
    };
    const pid = server.child.pid as number;
    const bridgePid = server.bridge?.child.pid;
    const bridgeCpuNow = () => (bridgePid === undefined ? 0 : cpuMs(bridgePid));
    for (let r = 1; r <= WARMUP + ROUNDS; r++) {
      const waiting = pool.round(r, MESSAGES, 120_000);
      const cpu0 = cpuMs(pid);
      const clientCpu0 = pool.cpuMs();
      const bridgeCpu0 = bridgeCpuNow();
      const t0 = nowMs();
      await publishBurst(ctx.js, subject, MESSAGES, r, traceparent);
      const res = await waiting;
      if (r <= WARMUP) continue; // warm-up: JIT, consumer pulls, socket buffers
      run.cpu += cpuMs(pid) - cpu0;
      run.clientCpu += pool.cpuMs() - clientCpu0;
      run.bridgeCpu += bridgeCpuNow() - bridgeCpu0;
      run.complete += res.complete;
      run.rates.push(res.deliveries / ((res.lastAt - t0) / 1000));
      run.p50s.push(res.hist.percentile(0.5));
      run.p99s.push(res.hist.percentile(0.99));
      await sleep(200);
    }
    return run;
  } finally {
    pool.close();
    await server.stop();
  }
}

/** Medians over every measured round of `runs` (runs of one mode), CPU summed over them all. */
function fanoutRow(runs: FanoutRun[]): FanoutRow {
  const clients = runs[0]?.clients ?? 0;
  const deliveries = clients * MESSAGES * ROUNDS * runs.length;
  return {
    rate: median(runs.flatMap((r) => r.rates)),
    p50: median(runs.flatMap((r) => r.p50s)),
    p99: median(runs.flatMap((r) => r.p99s)),
    complete: `${runs.reduce((n, r) => n + r.complete, 0)}/${clients * ROUNDS * runs.length}`,
    // Server CPU per delivery: what the server itself spends, whatever the load clients cost.
    cpu: (runs.reduce((n, r) => n + r.cpu, 0) * 1000) / deliveries,
    clientCpu: (runs.reduce((n, r) => n + r.clientCpu, 0) * 1000) / deliveries,
    bridgeCpu: (runs.reduce((n, r) => n + r.bridgeCpu, 0) * 1000) / deliveries,
  };
}

/** One fan-out result line; the per-round rates of separate runs are divided by ` | `. */
function fanoutLine(label: string, row: FanoutRow, runs: FanoutRun[]): string {
  const perRound = runs.map((r) => r.rates.map((x) => fmt(x)).join(", ")).join(" | ");
  // nchan's bridge (JetStream to Nchan's publisher over HTTP) is a process of its own.
  const bridge =
    label === "nchan"
      ? `   bridge CPU ${fmt(row.bridgeCpu, 2)} µs/delivery (server CPU incl. bridge ${fmt(row.cpu + row.bridgeCpu, 2)})`
      : "";
  return `${label.padEnd(8)} deliveries/s ${fmt(row.rate).padStart(12)}   p50 ${fmt(row.p50, 1).padStart(8)} ms   p99 ${fmt(row.p99, 1).padStart(8)} ms   server CPU ${fmt(row.cpu, 2)} µs/delivery (clients ${fmt(row.clientCpu, 2)})   rounds complete ${row.complete}   (per round: ${perRound})${bridge}`;
}

async function fanout(ctx: Ctx, clients: number): Promise<void> {
  const subject = "bench.fanout";
  log(
    `\n## Fan-out: ${fmt(clients)} clients on one subject, bursts of ${MESSAGES} messages, ${ROUNDS} rounds (+${WARMUP} warm-up)`,
  );
  const rows: Record<string, FanoutRow> = {};
  for (const kind of referenceKinds()) {
    const run = await measureFanout(ctx, kind, clients, subject);
    rows[kind] = fanoutRow([run]);
    log(fanoutLine(kind, rows[kind], [run]));
    await sleep(500);
  }
  const g = rows.gateway;
  const n = rows.naive;
  const i = rows.ideal;
  const nc = rows.nchan;
  const vsNchan = nc
    ? `   gateway/nchan CPU per delivery ${fmt(g ? g.cpu / nc.cpu : NaN, 2)}x (incl. bridge ${fmt(g ? g.cpu / (nc.cpu + nc.bridgeCpu) : NaN, 2)}x)`
    : "";
  if (g && n && i)
    log(
      `ratios: gateway/naive deliveries ${fmt(g.rate / n.rate, 2)}x (target >= 3)   gateway/ideal ${fmt(g.rate / i.rate, 2)}x (target >= 0.8)   p99 gateway/naive ${fmt(g.p99 / n.p99, 2)}x (target <= 0.5)${vsNchan}`,
    );
}

/** What one steady run measured (one server process), over its measured period. */
interface SteadyRun {
  clients: number;
  expected: number;
  deliveries: number;
  /** Clients that got every measured message. */
  complete: number;
  p50: number;
  p99: number;
  /** CPU of the server, and of nats-server (NaN when its pid is unknown), in ms. */
  cpu: number;
  natsCpu: number;
  /** CPU of the server's bridge process (nchan's), in ms; 0 for the others. */
  bridgeCpu: number;
  /** RSS of the server at the end of the measured period minus at its start, in bytes. */
  rssGrowth: number;
  /** How late the publisher was against its schedule: worst, in ms, and how many > 1 ms. */
  lateMaxMs: number;
  lateOver1Ms: number;
}

/**
 * Starts `kind`, opens `clients` connections on `subject`, then publishes one message every
 * `intervalMs` for STEADY_WARMUP_SECONDS + STEADY_SECONDS (a bounded count, on absolute due
 * times) and waits until every client has every measured message (or a grace of 30 s). Only
 * the messages after the warm-up are measured: they carry round 1, the warm-up's round 0. The
 * references run with BURST=1: with one message at a time there is no burst to gather, so each
 * message is written to every client as it comes (ideal then does naive's work, plus a copy).
 */
async function measureSteady(
  ctx: Ctx,
  kind: Kind,
  clients: number,
  intervalMs: number,
  subject: string,
): Promise<SteadyRun> {
  const server = await startKind(kind, ctx, subject, {}, 1);
  const pool = new LoadPool(WORKERS);
  try {
    await openFresh(pool, server, kind, subject, clients);
    const pid = server.child.pid as number;
    const natsPid = findPid("nats-server", String(ctx.nats.port));
    const bridgePid = server.bridge?.child.pid;
    const bridgeCpuNow = () => (bridgePid === undefined ? 0 : cpuMs(bridgePid));
    let bridgeCpu0 = 0;
    const warm = Math.round((STEADY_WARMUP_SECONDS * 1000) / intervalMs);
    const measured = Math.round((STEADY_SECONDS * 1000) / intervalMs);
    const waiting = pool.round(
      1,
      measured,
      (STEADY_WARMUP_SECONDS + STEADY_SECONDS) * 1000 + 30_000,
    );
    const natsCpuNow = () => (natsPid === undefined ? NaN : cpuMs(natsPid));
    let cpu0 = 0;
    let natsCpu0 = NaN;
    let rss0 = NaN;
    const pad = "x".repeat(48);
    const sent = await publishSteady({
      intervalMs,
      count: warm + measured,
      startAt: nowMs() + 100,
      maxInFlight: STEADY_IN_FLIGHT,
      beforeEach: (k) => {
        if (k !== warm) return;
        cpu0 = cpuMs(pid);
        natsCpu0 = natsCpuNow();
        bridgeCpu0 = bridgeCpuNow();
        rss0 = rss(pid);
      },
      // The fan-out's payload: the load clients read `t=` (publish time) and `r=` (round).
      payload: (k) => `t=${nowMs()};r=${k < warm ? 0 : 1};i=${k};${pad}`,
      publish: (payload) => ctx.js.publish(subject, payload),
    });
    const res = await waiting;
    return {
      clients,
      expected: clients * measured,
      deliveries: res.deliveries,
      complete: res.complete,
      p50: res.hist.percentile(0.5),
      p99: res.hist.percentile(0.99),
      cpu: cpuMs(pid) - cpu0,
      natsCpu: natsCpuNow() - natsCpu0,
      bridgeCpu: bridgeCpuNow() - bridgeCpu0,
      rssGrowth: rss(pid) - rss0,
      lateMaxMs: sent.lateMaxMs,
      lateOver1Ms: sent.lateOver1Ms,
    };
  } finally {
    pool.close();
    await server.stop();
  }
}

/**
 * Server CPU per delivery in µs, alone and with nats-server's; a bridge's (nchan's) alone, and
 * with the server's. `withNats` includes the bridge when there is one.
 */
function steadyCpu(run: SteadyRun): {
  server: number;
  withNats: number;
  bridge: number;
  withBridge: number;
} {
  const n = Math.max(1, run.deliveries);
  return {
    server: (run.cpu * 1000) / n,
    withNats: ((run.cpu + run.bridgeCpu + run.natsCpu) * 1000) / n,
    bridge: (run.bridgeCpu * 1000) / n,
    withBridge: ((run.cpu + run.bridgeCpu) * 1000) / n,
  };
}

function steadyLine(label: string, run: SteadyRun): string {
  const cpu = steadyCpu(run);
  const bridge =
    label === "nchan"
      ? `   bridge CPU ${fmt(cpu.bridge, 2)} µs/delivery (server CPU incl. bridge ${fmt(cpu.withBridge, 2)}; the nats-server figure includes it)`
      : "";
  return `${label.padEnd(8)} deliveries ${fmt(run.deliveries)}/${fmt(run.expected)}   p50 ${fmt(run.p50, 1).padStart(8)} ms   p99 ${fmt(run.p99, 1).padStart(8)} ms   server CPU ${fmt(cpu.server, 2)} µs/delivery (with nats-server ${fmt(cpu.withNats, 2)})   RSS growth ${fmt(run.rssGrowth / 1024)} kB   clients complete ${fmt(run.complete)}/${fmt(run.clients)}   (publisher late: max ${fmt(run.lateMaxMs, 1)} ms, ${run.lateOver1Ms} > 1 ms)${bridge}`;
}

async function steady(ctx: Ctx, clients: number, intervalMs: number): Promise<void> {
  const subject = "bench.steady";
  log(
    `\n## Steady: ${fmt(clients)} clients on one subject, one message every ${fmt(intervalMs)} ms (${fmt(1000 / intervalMs)}/s) for ${fmt(STEADY_SECONDS)} s (+${fmt(STEADY_WARMUP_SECONDS)} s warm-up), drift-free schedule, publishes pipelined (at most ${STEADY_IN_FLIGHT} awaiting their ack), references writing each message as it comes`,
  );
  const runs: Record<string, SteadyRun> = {};
  for (const kind of referenceKinds()) {
    runs[kind] = await measureSteady(ctx, kind, clients, intervalMs, subject);
    log(steadyLine(kind, runs[kind]));
    await sleep(500);
  }
  const g = runs.gateway;
  const n = runs.naive;
  const i = runs.ideal;
  const nc = runs.nchan;
  const vsNchan =
    g && nc
      ? `   gateway/nchan CPU per delivery ${fmt(steadyCpu(g).server / steadyCpu(nc).server, 2)}x (incl. bridge ${fmt(steadyCpu(g).server / steadyCpu(nc).withBridge, 2)}x)`
      : "";
  if (g && n && i)
    log(
      `gateway/naive CPU per delivery ${fmt(steadyCpu(g).server / steadyCpu(n).server, 2)}x   gateway/ideal ${fmt(steadyCpu(g).server / steadyCpu(i).server, 2)}x   p99 gateway/ideal ${fmt(g.p99 / i.p99, 2)}x${vsNchan}`,
    );
}

/**
 * The gateway's fan-out with tracing off and on: runs off, on, off, on (separate processes, so
 * rounds cannot interleave; the pairs keep drift from favouring one mode), medians per mode.
 * Every message carries a `traceparent` in both modes: the only difference is the gateway's
 * tracing. Spans go over OTLP/HTTP (protobuf) to a sink in a process of its own.
 */
async function tracing(ctx: Ctx, clients: number): Promise<void> {
  log(
    `\n## Tracing: gateway fan-out with tracing off and on (OTLP/HTTP to a local sink, always_on, TRACE_BATCHES=true), ${fmt(clients)} clients, bursts of ${MESSAGES} messages with a traceparent each, ${ROUNDS} rounds (+${WARMUP} warm-up) per run, runs off, on, off, on`,
  );
  const sink = await forkOtlpSink();
  try {
    const env: Record<"off" | "on", Record<string, string>> = {
      // Off whatever OTEL_* variables the bench itself was started with.
      off: { OTEL_SDK_DISABLED: "true" },
      on: {
        OTEL_SDK_DISABLED: "false",
        OTEL_TRACES_EXPORTER: "otlp",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${sink.url}/v1/traces`,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
        OTEL_TRACES_SAMPLER: "always_on",
        TRACE_BATCHES: "true",
        // The Node SDK also starts OTLP metric and log exporters unless told not to (to
        // localhost:4318 by default): only tracing is measured here.
        OTEL_METRICS_EXPORTER: "none",
        OTEL_LOGS_EXPORTER: "none",
      },
    };
    const runs: Record<"off" | "on", FanoutRun[]> = { off: [], on: [] };
    const sent: Record<"off" | "on", SinkCounts> = {
      off: { requests: 0, bytes: 0, other: 0 },
      on: { requests: 0, bytes: 0, other: 0 },
    };
    let n = 0;
    for (let pair = 0; pair < 2; pair++)
      for (const mode of ["off", "on"] as const) {
        const before = await sink.counts();
        // A subject of its own per run: every run's feed starts from the same (empty) subject.
        const subject = `bench.tracing.c${clients}.r${++n}`;
        runs[mode].push(await measureFanout(ctx, "gateway", clients, subject, env[mode], true));
        // The gateway has stopped, so its last spans have been flushed to the sink.
        const after = await sink.counts();
        sent[mode].requests += after.requests - before.requests;
        sent[mode].bytes += after.bytes - before.bytes;
        sent[mode].other += after.other - before.other;
        await sleep(500);
      }
    const off = fanoutRow(runs.off);
    const on = fanoutRow(runs.on);
    log(fanoutLine("off", off, runs.off));
    log(fanoutLine("on", on, runs.on));
    log(`spans exported: ${fmt(sent.on.requests)} requests, ${fmt(sent.on.bytes / 1024, 1)} kB`);
    if (sent.off.requests + sent.off.other > 0)
      log(
        `note: the sink got ${sent.off.requests + sent.off.other} requests while tracing was off`,
      );
    if (sent.on.other > 0)
      log(`note: the sink got ${sent.on.other} requests other than POST /v1/traces`);
    log(
      `tracing on/off: deliveries ${fmt(on.rate / off.rate, 2)}x (target >= 0.8)   server CPU per delivery ${fmt(on.cpu / off.cpu, 2)}x   p99 ${fmt(on.p99 / off.p99, 2)}x`,
    );
  } finally {
    await sink.close();
  }
}

async function memory(ctx: Ctx, clients: number): Promise<void> {
  log(`\n## Memory per idle connection: ${fmt(clients)} connections held`);
  const per: Record<string, number> = {};
  // nchan: the RSS of the nginx process (no master process: the only one), its bridge aside.
  const kinds: Kind[] = ["gateway", "idle"];
  if (!("missing" in findNchan())) kinds.push("nchan");
  for (const kind of kinds) {
    const server = await startKind(kind, ctx, "bench.idle");
    const pool = new LoadPool(WORKERS);
    try {
      await sleep(1000);
      const pid = server.child.pid as number;
      const before = median([rss(pid), (await sleep(200), rss(pid)), (await sleep(200), rss(pid))]);
      const opened = await pool.open(
        server.port,
        "/events/bench.idle",
        new Array(clients).fill(null),
        256,
      );
      if (opened.ok !== clients)
        throw new Error(`${kind}: only ${opened.ok} of ${clients} connected`);
      await sleep(3000);
      const after = median([rss(pid), (await sleep(300), rss(pid)), (await sleep(300), rss(pid))]);
      per[kind] = (after - before) / clients;
      const label =
        kind === "idle" ? "bare node:http" : kind === "nchan" ? "nginx + Nchan" : "gateway";
      log(
        `${label.padEnd(15)} RSS ${fmt(before / 2 ** 20, 1)} MiB -> ${fmt(after / 2 ** 20, 1)} MiB   ${fmt(per[kind] / 1024, 1)} kB per connection`,
      );
    } finally {
      pool.close();
      await server.stop();
    }
  }
  if (per.gateway && per.idle)
    log(`ratio gateway/bare: ${fmt(per.gateway / per.idle, 2)}x (target <= 1.2)`);
  if (per.gateway && per.nchan) log(`ratio gateway/nchan: ${fmt(per.gateway / per.nchan, 2)}x`);
}

/** Peak consumers on the stream while `work` runs, read from JetStream itself. */
async function peakConsumers<T>(nc: NatsConnection, work: Promise<T>): Promise<[T, number]> {
  const jsm = await jetstreamManager(nc);
  let peak = 0;
  let running = true;
  const poll = (async () => {
    while (running) {
      const info = await jsm.streams.info(STREAM).catch(() => undefined);
      if (info) peak = Math.max(peak, info.state.consumer_count);
      await sleep(20);
    }
  })();
  try {
    return [await work, peak];
  } finally {
    running = false;
    await poll;
  }
}

/** What one reconnect storm measured. */
interface StormResult {
  opened: { ok: number; failed: number; statuses: Record<string, number> };
  caught: { complete: number; deliveries: number; duplicates: number; gaps: number };
  /** From the first connection to the last client caught up, in s. */
  secs: number;
  lost: number;
  peak: number;
  /** CPU the server used over the same time, in ms. */
  serverCpu: number;
  /** What the gateway's replays cost NATS, from its /metrics (see {@link replayLoad}). */
  load: string;
}

/**
 * The replays' load on NATS as the gateway counts it: messages JetStream sent to replay
 * consumers (`sse_replay_messages_read_total`; a gateway older than shared replays has no such
 * counter, and each of its replays read what it delivered, `sse_replayed_events_total`), and how
 * sessions shared runs.
 */
async function replayLoad(server: ServerProc): Promise<string> {
  if (server.adminPort === undefined) return "";
  const text = await (await fetch(`http://127.0.0.1:${server.adminPort}/metrics`)).text();
  const value = (name: string, label = "") => {
    const line = text.split("\n").find((l) => l.startsWith(`${name}${label} `));
    return line === undefined ? undefined : Number(line.split(" ")[1]);
  };
  const read = value("sse_replay_messages_read_total");
  const delivered = value("sse_replayed_events_total") ?? 0;
  const runs = (how: string) => value("sse_replay_shared_sessions_total", `{how="${how}"}`) ?? 0;
  return read === undefined
    ? `replay consumers read ${fmt(delivered)} messages from JetStream (one replay per session: sse_replayed_events_total)`
    : `replay consumers read ${fmt(read)} messages from JetStream (sse_replay_messages_read_total), delivered ${fmt(delivered)} replayed events; shared runs started ${fmt(runs("started"))}, joined ${fmt(runs("joined"))}, fell out ${fmt(runs("fell-out"))}`;
}

/**
 * K clients whose cursors are spread over the last messages reconnect at once to a fresh
 * instance. With the default window they resume from memory; `env` can shrink the window so
 * most of them need replay consumers instead. `headers`: extra request headers per client (a
 * token each, say), handed to the load clients before the clock starts.
 */
async function stormRun(
  ctx: Ctx,
  subject: string,
  env: Record<string, string> = {},
  headers?: Array<Record<string, string>>,
): Promise<StormResult> {
  // A storm starts from a stream holding only its own messages: a fresh instance sizes its
  // window's warm-up from the stream's average message size, which earlier scenarios' messages
  // (other subjects, trace headers) would otherwise change from one `make bench` to the next.
  await ctx.jsm.streams.purge(STREAM);
  const last = await fill(ctx.js, subject, STORM_SPREAD);
  const first = last - STORM_SPREAD + 1;
  const cursors = Array.from(
    { length: STORM_CLIENTS },
    () => first - 1 + Math.floor(Math.random() * STORM_SPREAD),
  );
  const expected = cursors.reduce((n, c) => n + (last - c), 0);
  const server = await startKind("gateway", ctx, subject, env);
  const pool = new LoadPool(WORKERS);
  try {
    if (headers) await pool.headers(headers);
    const pid = server.child.pid as number;
    const cpu0 = cpuMs(pid);
    const t0 = nowMs();
    const [result, peak] = await peakConsumers(
      ctx.nc,
      (async () => {
        const opened = await pool.open(server.port, `/events/${subject}`, cursors, 0);
        // Live messages keep arriving during the storm: the handoff must hold under them too.
        const live = 50;
        let target = last;
        for (let i = 0; i < live; i++) {
          target = await publishBurst(ctx.js, subject, 1, -2);
          await sleep(10);
        }
        const caught = await pool.catchup(target, 300_000);
        return { opened, caught, target };
      })(),
    );
    const serverCpu = cpuMs(pid) - cpu0;
    const { opened, caught, target } = result;
    const expectedAll = expected + STORM_CLIENTS * (target - last);
    const lost = expectedAll - (caught.deliveries - caught.duplicates);
    const load = await replayLoad(server);
    return { opened, caught, secs: (caught.lastAt - t0) / 1000, lost, peak, serverCpu, load };
  } finally {
    pool.close();
    await server.stop();
  }
}

async function storm(
  ctx: Ctx,
  subject: string,
  label: string,
  env: Record<string, string> = {},
): Promise<void> {
  log(
    `\n## Reconnect storm${label}: ${fmt(STORM_CLIENTS)} clients, cursors spread over the last ${fmt(STORM_SPREAD)} messages, all at once to a fresh instance`,
  );
  const { opened, caught, secs, lost, peak, load, serverCpu } = await stormRun(ctx, subject, env);
  log(`connected ${fmt(opened.ok)}/${fmt(STORM_CLIENTS)} ${JSON.stringify(opened.statuses)}`);
  log(
    `caught up ${fmt(caught.complete)}/${fmt(STORM_CLIENTS)} in ${fmt(secs, 2)} s   events ${fmt(caught.deliveries)} (${fmt(caught.deliveries / secs)}/s)`,
  );
  log(
    `lost ${fmt(lost)}   duplicates ${fmt(caught.duplicates)}   out-of-order/gaps ${fmt(caught.gaps)}   peak consumers on NATS ${peak} (1 feed + replays bounded by REPLAY_MAX_CONCURRENT=64)`,
  );
  log(`server CPU ${fmt(serverCpu)} ms for the storm   ${load}`);
}

/**
 * The in-window reconnect storm with authorization off, then on with an HS256 secret, then on
 * with an ES256 public key (asymmetric verification costs more). Every client of an `on` run
 * sends `Authorization: Bearer <token>`, a token of its own (distinct `sub`) minted in advance
 * and handed to the load clients before the clock starts, so the difference is the gateway's
 * verification and grant checks. A fresh subject and instance per run.
 */
async function auth(ctx: Ctx): Promise<void> {
  log(
    `\n## Reconnect storm with authorization off and on: ${fmt(STORM_CLIENTS)} clients, cursors spread over the last ${fmt(STORM_SPREAD)} messages, all at once to a fresh instance; runs off, HS256 (AUTH_JWT_SECRET), ES256 (AUTH_JWT_PUBLIC_KEY), each client with a token of its own (Authorization: Bearer)`,
  );
  const modes = [
    { label: "off", key: undefined },
    { label: "HS256", key: hs256Key() },
    { label: "ES256", key: es256Key() },
  ] as const;
  const rows: Record<string, StormResult> = {};
  for (const { label, key } of modes) {
    const subject = `bench.auth.${label.toLowerCase()}`;
    // Off too (with no headers): the load clients have started and answered before the clock
    // starts in every mode alike.
    let headers: Array<Record<string, string>> = [];
    if (key) {
      const tokens = await mintTokens(key, STORM_CLIENTS, ["bench.auth.>"]);
      headers = tokens.map((t) => ({ Authorization: `Bearer ${t}` }));
      log(
        `${label} tokens: ${fmt(tokens.length)} minted in advance, ${fmt(median(tokens.map((t) => t.length)))} bytes each (median)`,
      );
    }
    const r = await stormRun(ctx, subject, key?.env ?? {}, headers);
    rows[label] = r;
    log(
      `${label.padEnd(6)} connected ${fmt(r.opened.ok)}/${fmt(STORM_CLIENTS)} ${JSON.stringify(r.opened.statuses)}   caught up ${fmt(r.caught.complete)}/${fmt(STORM_CLIENTS)} in ${fmt(r.secs, 2)} s   events ${fmt(r.caught.deliveries)} (${fmt(r.caught.deliveries / r.secs)}/s)   lost ${fmt(r.lost)}   duplicates ${fmt(r.caught.duplicates)}   gaps ${fmt(r.caught.gaps)}   server CPU ${fmt(r.serverCpu)} ms for the storm, ${fmt((r.serverCpu * 1000) / STORM_CLIENTS, 1)} µs/connection`,
    );
    await sleep(500);
  }
  const off = rows.off;
  const ratio = (on: StormResult | undefined, name: string) => {
    if (!off || !on) return;
    log(
      `${name}: storm time ${fmt(on.secs / off.secs, 2)}x, CPU per connection ${fmt(on.serverCpu / off.serverCpu, 2)}x`,
    );
  };
  ratio(rows.HS256, "auth on/off");
  ratio(rows.ES256, "auth ES256/off");
}

async function deep(ctx: Ctx): Promise<void> {
  const subject = "bench.deep";
  log(`\n## Deep resume: one client ${fmt(DEEP)} messages behind`);
  const last = await fill(ctx.js, subject, DEEP);
  const cursor = last - DEEP;
  const server = await startKind("gateway", ctx, subject);
  const pool = new LoadPool(1);
  try {
    const t0 = nowMs();
    await pool.open(server.port, `/events/${subject}`, [cursor], 0);
    const caught = await pool.catchup(last, 300_000);
    const secs = (caught.lastAt - t0) / 1000;
    log(
      `replayed ${fmt(caught.deliveries)} events in ${fmt(secs, 2)} s: ${fmt(caught.deliveries / secs)} events/s   duplicates ${caught.duplicates}   gaps ${caught.gaps}`,
    );
    log(await replayLoad(server));
  } finally {
    pool.close();
    await server.stop();
  }
}

async function main(): Promise<void> {
  log(`# JetStream SSE Gateway benchmarks`);
  log(
    `machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? "cpu"}, ${fmt(os.totalmem() / 2 ** 30, 0)} GiB, ${os.platform()} ${os.release()}, Node ${process.version}`,
  );
  log(`date: ${new Date().toISOString()}   command: npm run bench -- ${args.join(" ")}`);
  const nats = await startNats();
  const nc = await connect({ servers: nats.url });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: STREAM, subjects: ["bench.>"] });
  const ctx: Ctx = { nats, nc, js: jetstream(nc), jsm };
  try {
    if (want("fanout")) for (const n of CLIENTS) await fanout(ctx, n);
    if (want("steady")) for (const ms of STEADY_INTERVALS) await steady(ctx, STEADY_CLIENTS, ms);
    if (want("tracing")) for (const n of TRACING_CLIENTS) await tracing(ctx, n);
    if (want("memory")) await memory(ctx, Math.max(...CLIENTS));
    if (want("storm")) {
      await storm(ctx, "bench.storm", "");
      await storm(
        ctx,
        "bench.storm2",
        " beyond the window (WINDOW_MESSAGES=1000: replay consumers)",
        {
          WINDOW_MESSAGES: "1000",
        },
      );
    }
    if (want("auth")) await auth(ctx);
    if (want("deep")) await deep(ctx);
    if (want("capacity")) await capacity(ctx, args);
  } finally {
    await nc.close();
    await nats.close();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
