/**
 * `capacity`: one gateway instance holding as many SSE connections as one process may hold on
 * this machine (`--capacity-clients`, default 19,000: the open-file limit is 20,000 per process
 * here), the figures a projection to 100,000 per instance needs, per connection:
 *
 * - the time to open them all (accept rate) and every refused or failed connect, with the
 *   kernel's listen-queue overflow counters before and after;
 * - RSS and V8 heap per connection (before and after, like the `memory` scenario; the heap from
 *   the gateway's own `/metrics`);
 * - CPU and event-loop delay at rest with the heartbeat off (HEARTBEAT_MS=3600000) and with a
 *   short one (HEARTBEAT_MS=1000), so the heartbeat's CPU per connection per beat and the length
 *   of one heartbeat pass (one loop over every session) show;
 * - publish-to-last-receive time of single messages broadcast to every connection, the p50/p99
 *   of all receive times, and the event-loop delay and GC while the broadcast runs.
 *
 * Event-loop delay comes from the gateway's admin `/metrics` (prom-client's default
 * `nodejs_eventloop_lag_*_seconds`: a perf_hooks monitorEventLoopDelay histogram at 10 ms
 * resolution that each scrape reads and resets, so one scrape before and one after a period give
 * that period's figures; at rest its p50 is the resolution itself, ~10 ms), and from outside: a
 * prober GETs `/livez` on the admin port, one request at a time every 20 ms, over a kept-alive
 * connection, and records its response times (during each broadcast, and for 3 s after each
 * period of rest: not during it, as its requests cost the gateway CPU too).
 *
 * Clients: `--capacity-workers` load processes (default 4), their sockets bound to loopback
 * source addresses 127.0.1.1, 127.0.1.2, … with at most `--capacity-per-address` connections
 * each (default 2,000; each source address has ~28,000 ephemeral ports). Each load process opens
 * `--capacity-batch` connections at a time (default 512). `--capacity-messages` broadcasts are
 * measured (default 7, after one warm-up); `--capacity-idle-seconds` of rest are measured per
 * heartbeat setting (default 10).
 */
import type { JetStreamClient } from "@nats-io/jetstream";
import { readFileSync } from "node:fs";
import { request, Agent } from "node:http";
import { openFileLimit } from "../src/http/socketLimits";
import type { NatsHandle } from "../test/support/nats";
import { freePort } from "../test/support/ports";
import { Histogram, median, nowMs } from "./lib/histogram";
import { listenDrops } from "./lib/netstat";
import { DEFAULT_SOURCE, LoadPool } from "./lib/pool";
import { imageNodeOptions } from "./lib/imageNodeOptions";
import { cpuMs, rss, sleep, startServer, type ServerProc } from "./lib/procs";
import { sample, scrape, type PromScrape } from "./lib/promText";

/** What the scenario needs of the runner's context: its nats-server, and a stream on `bench.>`. */
export interface CapacityContext {
  nats: NatsHandle;
  js: JetStreamClient;
}

const SUBJECT = "bench.capacity";
/** HEARTBEAT_MS of the "off" runs: one hour, so no beat falls in any measured period. */
const HEARTBEAT_OFF_MS = 3_600_000;
const HEARTBEAT_ON_MS = 1_000;
/** How often the /livez prober asks, in ms (one request at a time). */
const PROBE_EVERY_MS = 20;
/** How long the prober runs after a period of rest, in s. */
const PROBE_SECONDS = 3;
/** File descriptors the gateway keeps for itself beyond its public sockets (NATS, admin, epoll…). */
const FD_RESERVE = 256;

interface Options {
  clients: number;
  workers: number;
  perAddress: number;
  batch: number;
  messages: number;
  idleSeconds: number;
}

function options(argv: readonly string[]): Options {
  const opt = (name: string, def: number) => {
    const i = argv.indexOf(`--capacity-${name}`);
    const v = i >= 0 ? Number(argv[i + 1]) : def;
    if (!Number.isInteger(v) || v < 1) throw new Error(`--capacity-${name}: a positive integer`);
    return v;
  };
  return {
    clients: opt("clients", 19_000),
    workers: opt("workers", 4),
    perAddress: opt("per-address", 2_000),
    batch: opt("batch", 512),
    messages: opt("messages", 7),
    idleSeconds: opt("idle-seconds", 10),
  };
}

function log(line = ""): void {
  process.stdout.write(line + "\n");
}

const fmt = (n: number, digits = 0) =>
  Number.isFinite(n)
    ? n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : "n/a";
const mib = (bytes: number) => fmt(bytes / 2 ** 20, 1);

/** A gateway started the way the runner starts its `gateway` kind, sized for `clients`. */
interface Instance {
  server: ServerProc;
  pid: number;
  metricsUrl: string;
  livezUrl: string;
}

async function startGateway(
  ctx: CapacityContext,
  clients: number,
  heartbeatMs: number,
  maxSockets: number,
): Promise<Instance> {
  const port = await freePort();
  const adminPort = await freePort();
  const maxConnections = Math.min(clients + 256, maxSockets);
  const server = await startServer(
    "src/main.js",
    {
      NATS_URL: ctx.nats.url,
      ADMIN_PORT: String(adminPort),
      LOG_LEVEL: "warn",
      MAX_CONNECTIONS: String(maxConnections),
      MAX_CONNECTIONS_PER_CLIENT: String(maxConnections),
      // Explicit: derived, it would be the open-file limit less 1,024 (18,976 of 20,000 here),
      // the rest kept for the probes; this run knows it opens no more than `clients`.
      HTTP_MAX_SOCKETS: String(maxSockets),
      // As the image runs it (the young generation's bound shows in memory per connection).
      NODE_OPTIONS: imageNodeOptions(),
      REPLAY_MAX_PER_CLIENT: "50000",
      HEARTBEAT_MS: String(heartbeatMs),
      DRAIN_WINDOW_MS: "0",
    },
    port,
    adminPort,
  );
  return {
    server,
    pid: server.child.pid as number,
    metricsUrl: `http://127.0.0.1:${adminPort}/metrics`,
    livezUrl: `http://127.0.0.1:${adminPort}/livez`,
  };
}

/** `count` loopback source addresses: 127.0.1.1 … 127.0.1.250, 127.0.2.1 … */
function sourceAddresses(count: number): string[] {
  return Array.from(
    { length: count },
    (_, k) => `127.0.${1 + Math.floor(k / 250)}.${1 + (k % 250)}`,
  );
}

/** Write system calls a process has made so far (Linux /proc/<pid>/io `syscw`). */
function writeCalls(pid: number): number {
  const m = /^syscw: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, "utf8"));
  return m ? Number(m[1]) : NaN;
}

/** What opening every connection took. */
interface Opened {
  ok: number;
  failed: number;
  statuses: Record<string, number>;
  secs: number;
  overflows: number;
  drops: number;
  /** CPU the gateway used while they opened, in ms. */
  cpuMs: number;
}

async function openAll(
  pool: LoadPool,
  inst: Instance,
  o: Options,
  addresses: string[],
): Promise<Opened> {
  const k0 = listenDrops();
  const cpu0 = cpuMs(inst.pid);
  const t0 = nowMs();
  const r = await pool.open(
    inst.server.port,
    `/events/${SUBJECT}`,
    new Array(o.clients).fill(null),
    o.batch,
    DEFAULT_SOURCE,
    addresses,
  );
  const secs = (nowMs() - t0) / 1000;
  const cpu = cpuMs(inst.pid) - cpu0;
  const k1 = listenDrops();
  return {
    ...r,
    secs,
    overflows: k1.overflows - k0.overflows,
    drops: k1.drops - k0.drops,
    cpuMs: cpu,
  };
}

function openedLine(label: string, o: Options, r: Opened): string {
  return `open (${label}): ${fmt(r.ok)}/${fmt(o.clients)} connected in ${fmt(r.secs, 2)} s (${fmt(r.ok / r.secs)}/s accepted), ${fmt(o.batch)} in flight per load process   gateway CPU ${fmt((r.cpuMs * 1000) / Math.max(1, r.ok))} µs per connection   refused/failed ${fmt(r.failed)} ${JSON.stringify(r.statuses)}   kernel listen overflows +${fmt(r.overflows)}, drops +${fmt(r.drops)}`;
}

/** Response times of `/livez`, asked one at a time every {@link PROBE_EVERY_MS} until stopped. */
function startProber(url: string): { stop(): Promise<number[]> } {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const times: number[] = [];
  let running = true;
  const once = () =>
    new Promise<void>((resolve) => {
      const t0 = performance.now();
      const req = request(url, { agent, timeout: 5_000 }, (res) => {
        res.resume();
        res.on("end", () => {
          times.push(performance.now() - t0);
          resolve();
        });
      });
      req.on("error", () => resolve());
      req.on("timeout", () => req.destroy());
      req.end();
    });
  const loop = (async () => {
    // Bounded: at most one probe per PROBE_EVERY_MS for as long as the period runs.
    while (running) {
      await once();
      await sleep(PROBE_EVERY_MS);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      agent.destroy();
      return times;
    },
  };
}

/** Event-loop delay since the previous scrape (which reset it), from prom-client's gauges, in ms. */
function loopDelay(s: PromScrape): { p50: number; p99: number; max: number } {
  return {
    p50: sample(s, "nodejs_eventloop_lag_p50_seconds") * 1000,
    p99: sample(s, "nodejs_eventloop_lag_p99_seconds") * 1000,
    max: sample(s, "nodejs_eventloop_lag_max_seconds") * 1000,
  };
}

/** GC pauses between two scrapes: count, total and those over 10 ms, all kinds together. */
function gcBetween(a: PromScrape, b: PromScrape): { count: number; ms: number; over10: number } {
  const name = "nodejs_gc_duration_seconds";
  const sum = (s: PromScrape, suffix: string, labels: Record<string, string> = {}) =>
    (s.samples.get(name + suffix) ?? [])
      .filter((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v))
      .reduce((n, x) => n + x.value, 0);
  const d = (suffix: string, labels?: Record<string, string>) =>
    sum(b, suffix, labels) - sum(a, suffix, labels);
  return {
    count: d("_count"),
    ms: d("_sum") * 1000,
    over10: d("_count") - d("_bucket", { le: "0.01" }),
  };
}

const gcText = (g: { count: number; ms: number; over10: number }) =>
  `GC ${fmt(g.count)} pauses, ${fmt(g.ms, 1)} ms in all, ${fmt(g.over10)} over 10 ms`;

const probeText = (times: number[]) =>
  times.length === 0
    ? "/livez: no answer"
    : `/livez ${fmt(times.length)} probes: median ${fmt(median(times), 1)} ms, max ${fmt(Math.max(...times), 1)} ms`;

const delayText = (d: { p50: number; p99: number; max: number }) =>
  `event-loop delay p50 ${fmt(d.p50, 1)} ms, p99 ${fmt(d.p99, 1)} ms, max ${fmt(d.max, 1)} ms`;

/** CPU and event-loop delay of the gateway over `seconds` of rest, then probes' answers. */
interface Rest {
  cpuMs: number;
  /** Write system calls of the gateway over the period: one per session per heartbeat. */
  writes: number;
  delay: { p50: number; p99: number; max: number };
  probes: number[];
  gc: { count: number; ms: number; over10: number };
}

/**
 * `seconds` of rest with nothing but two scrapes (CPU, prom-client's event-loop delay, GC),
 * then {@link PROBE_SECONDS} more with the /livez prober: its requests cost the gateway CPU
 * (Koa, ~0.5 ms each), which must not count as the cost of holding connections.
 */
async function rest(inst: Instance, seconds: number): Promise<Rest> {
  const s0 = await scrape(inst.metricsUrl); // resets the delay histogram: the period starts here
  const cpu0 = cpuMs(inst.pid);
  const writes0 = writeCalls(inst.pid);
  await sleep(seconds * 1000);
  const cpu = cpuMs(inst.pid) - cpu0;
  const writes = writeCalls(inst.pid) - writes0;
  const s1 = await scrape(inst.metricsUrl);
  const prober = startProber(inst.livezUrl);
  await sleep(PROBE_SECONDS * 1000);
  const probes = await prober.stop();
  return { cpuMs: cpu, writes, delay: loopDelay(s1), probes, gc: gcBetween(s0, s1) };
}

function restLine(label: string, seconds: number, r: Rest): string {
  return `at rest, ${label} (${fmt(seconds)} s): gateway CPU ${fmt(r.cpuMs)} ms (${fmt(r.cpuMs / seconds, 1)} ms/s)   ${delayText(r.delay)}   ${gcText(r.gc)}   then ${fmt(PROBE_SECONDS)} s of ${probeText(r.probes)}`;
}

/**
 * RSS (median of three readings 300 ms apart) and V8 heap used, in bytes, and how long the
 * gateway's `/metrics` takes to answer (median of three), in ms.
 */
async function footprint(
  inst: Instance,
): Promise<{ rss: number; heap: number; heapTotal: number; scrapeMs: number }> {
  const rssNow = median([
    rss(inst.pid),
    (await sleep(300), rss(inst.pid)),
    (await sleep(300), rss(inst.pid)),
  ]);
  const s = await scrape(inst.metricsUrl);
  return {
    rss: rssNow,
    heap: sample(s, "nodejs_heap_size_used_bytes"),
    heapTotal: sample(s, "nodejs_heap_size_total_bytes"),
    scrapeMs: median([
      s.ms,
      (await scrape(inst.metricsUrl)).ms,
      (await scrape(inst.metricsUrl)).ms,
    ]),
  };
}

/** One broadcast: a single message published, awaited at every client. */
interface Broadcast {
  lastMs: number;
  hist: Histogram;
  complete: number;
  cpuMs: number;
  delay: { p50: number; p99: number; max: number };
  probes: number[];
  gc: { count: number; ms: number; over10: number };
}

async function broadcast(
  ctx: CapacityContext,
  pool: LoadPool,
  inst: Instance,
  round: number,
): Promise<Broadcast> {
  const waiting = pool.round(round, 1, 60_000);
  const s0 = await scrape(inst.metricsUrl);
  const prober = startProber(inst.livezUrl);
  const cpu0 = cpuMs(inst.pid);
  const t = nowMs();
  // The load clients read `t=` (publish time) and `r=` (round) from the payload's first bytes.
  await ctx.js.publish(SUBJECT, `t=${t};r=${round};i=0;${"x".repeat(48)}`);
  const res = await waiting;
  const cpu = cpuMs(inst.pid) - cpu0;
  const probes = await prober.stop();
  const s1 = await scrape(inst.metricsUrl);
  return {
    lastMs: res.lastAt - t,
    hist: res.hist,
    complete: res.complete,
    cpuMs: cpu,
    delay: loopDelay(s1),
    probes,
    gc: gcBetween(s0, s1),
  };
}

/**
 * Runs the scenario: one instance with the heartbeat off (open, memory, rest, broadcasts,
 * shutdown), then one with HEARTBEAT_MS=1000 (open, rest). Each instance gets fresh load
 * processes and is stopped before the next starts.
 */
export async function capacity(ctx: CapacityContext, argv: readonly string[]): Promise<void> {
  const o = options(argv);
  const addressCount = Math.ceil(Math.ceil(o.clients / o.perAddress) / o.workers) * o.workers;
  const addresses = sourceAddresses(addressCount);
  const fdLimit = openFileLimit() ?? Infinity;
  const maxSockets = Math.min(o.clients + 1_024, fdLimit - FD_RESERVE);
  log(
    `\n## Capacity: one gateway instance, ${fmt(o.clients)} SSE connections (${o.workers} load processes, ${addressCount} source addresses ${addresses[0]}–${addresses[addressCount - 1]}, about ${fmt(Math.ceil(o.clients / addressCount))} connections each)`,
  );
  // Left out, not failed: `make bench` runs every scenario, on machines with other limits too.
  if (o.clients > maxSockets) {
    log(
      `capacity: left out: ${fmt(o.clients)} clients do not fit the open-file limit (${fmt(fdLimit)}) less ${FD_RESERVE} for the gateway itself: lower --capacity-clients or raise ulimit -n`,
    );
    return;
  }
  log(
    `gateway: MAX_CONNECTIONS=${Math.min(o.clients + 256, maxSockets)} HTTP_MAX_SOCKETS=${maxSockets} (open-file limit ${fmt(fdLimit)}, inherited), one subject, DRAIN_WINDOW_MS=0`,
  );

  // The heartbeat off: the baseline at rest, memory, broadcasts.
  let off: Rest;
  {
    const inst = await startGateway(ctx, o.clients, HEARTBEAT_OFF_MS, maxSockets);
    const pool = new LoadPool(o.workers);
    let stopped = false;
    try {
      await sleep(1_000);
      const before = await footprint(inst);
      const opened = await openAll(pool, inst, o, addresses);
      log(openedLine(`HEARTBEAT_MS=${HEARTBEAT_OFF_MS}`, o, opened));
      if (opened.ok !== o.clients)
        throw new Error(`capacity: only ${opened.ok} of ${o.clients} connected`);
      await sleep(3_000);
      const after = await footprint(inst);
      log(
        `memory: RSS ${mib(before.rss)} MiB -> ${mib(after.rss)} MiB: ${fmt((after.rss - before.rss) / o.clients / 1024, 1)} kB per connection   V8 heap used ${mib(before.heap)} MiB -> ${mib(after.heap)} MiB: ${fmt((after.heap - before.heap) / o.clients / 1024, 1)} kB per connection (heap total ${mib(before.heapTotal)} -> ${mib(after.heapTotal)} MiB)   GET /metrics answered in ${fmt(before.scrapeMs, 1)} ms -> ${fmt(after.scrapeMs, 1)} ms (median of 3)`,
      );
      off = await rest(inst, o.idleSeconds);
      log(restLine(`heartbeat off (HEARTBEAT_MS=${HEARTBEAT_OFF_MS})`, o.idleSeconds, off));

      const runs: Broadcast[] = [];
      for (let r = 1; r <= 1 + o.messages; r++) {
        const b = await broadcast(ctx, pool, inst, r);
        if (r > 1) runs.push(b); // the first is a warm-up: JIT, the feed's first batch
        await sleep(500);
      }
      const all = new Histogram();
      for (const b of runs) all.merge(b.hist);
      const lasts = runs.map((b) => b.lastMs);
      const cpus = runs.map((b) => b.cpuMs);
      log(
        `broadcast of one message to all, ${o.messages} times (+1 warm-up): publish to last receive median ${fmt(median(lasts), 1)} ms, max ${fmt(Math.max(...lasts), 1)} ms (each: ${lasts.map((x) => fmt(x, 1)).join(", ")})   receive p50 ${fmt(all.percentile(0.5), 1)} ms, p99 ${fmt(all.percentile(0.99), 1)} ms (all ${fmt(all.total)} receives)   clients complete ${fmt(runs.reduce((n, b) => n + b.complete, 0))}/${fmt(o.clients * o.messages)}`,
      );
      log(
        `during the broadcasts: gateway CPU per broadcast median ${fmt(median(cpus))} ms (${fmt((median(cpus) * 1000) / o.clients, 2)} µs per delivery; /proc, 10 ms ticks)   event-loop delay max median ${fmt(median(runs.map((b) => b.delay.max)), 1)} ms, worst ${fmt(Math.max(...runs.map((b) => b.delay.max)), 1)} ms; p99 median ${fmt(median(runs.map((b) => b.delay.p99)), 1)} ms   /livez max median ${fmt(median(runs.map((b) => (b.probes.length ? Math.max(...b.probes) : NaN))), 1)} ms, worst ${fmt(Math.max(...runs.flatMap((b) => b.probes)), 1)} ms   GC ${fmt(runs.reduce((n, b) => n + b.gc.count, 0))} pauses, ${fmt(
          runs.reduce((n, b) => n + b.gc.ms, 0),
          1,
        )} ms in all, ${fmt(runs.reduce((n, b) => n + b.gc.over10, 0))} over 10 ms`,
      );
      const t0 = nowMs();
      pool.close();
      await inst.server.stop();
      stopped = true;
      log(
        `shutdown with ${fmt(o.clients)} connections open (SIGTERM to exit, DRAIN_WINDOW_MS=0; the clients are closing too): ${fmt((nowMs() - t0) / 1000, 2)} s`,
      );
    } finally {
      if (!stopped) {
        pool.close();
        await inst.server.stop();
      }
    }
  }
  await sleep(1_000);

  // The heartbeat every second: its cost at rest over the baseline.
  {
    const inst = await startGateway(ctx, o.clients, HEARTBEAT_ON_MS, maxSockets);
    const pool = new LoadPool(o.workers);
    try {
      await sleep(1_000);
      const opened = await openAll(pool, inst, o, addresses);
      log(openedLine(`HEARTBEAT_MS=${HEARTBEAT_ON_MS}`, o, opened));
      if (opened.ok !== o.clients)
        throw new Error(`capacity: only ${opened.ok} of ${o.clients} connected`);
      await sleep(3_000);
      const on = await rest(inst, o.idleSeconds);
      log(restLine(`heartbeat every ${fmt(HEARTBEAT_ON_MS)} ms`, o.idleSeconds, on));
      // Beats that happened, from the gateway's write calls (one per session per beat): a pass
      // that outlasts the interval delays the next, so there may be fewer than one per second.
      const scheduled = (o.idleSeconds * 1000) / HEARTBEAT_ON_MS;
      const beats = Math.max(1, Math.round((on.writes - off.writes) / o.clients));
      const perBeat = (on.cpuMs - off.cpuMs) / beats;
      log(
        `heartbeat: ${fmt(perBeat, 1)} ms of CPU per beat over the baseline (${fmt(beats)} beats of ${fmt(scheduled)} scheduled, counted from the gateway's write calls: ${fmt(on.writes)} vs ${fmt(off.writes)} without): ${fmt((perBeat * 1000) / o.clients, 2)} µs per connection per heartbeat; one pass over ${fmt(o.clients)} sessions blocks the loop about as long (event-loop delay max ${fmt(on.delay.max, 1)} ms vs ${fmt(off.delay.max, 1)} ms without)   at the default HEARTBEAT_MS=15000: ${fmt((perBeat * 1000) / 15_000, 2)} ms of CPU per second`,
      );
    } finally {
      pool.close();
      await inst.server.stop();
    }
  }
}
