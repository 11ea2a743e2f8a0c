/**
 * `make bench`: the gateway's benchmarks, each printing its figures (never asserting them).
 *
 *   npm run bench -- [fanout] [memory] [storm] [deep] [--clients 2000,10000] [--messages 100]
 *                    [--rounds 5] [--storm-clients 5000] [--storm-spread 3000] [--deep 100000]
 *
 * Everything runs on 127.0.0.1: one nats-server, the server under test in its own process, and
 * load clients in their own processes (raw sockets; HTTP chunking and SSE decoded for real).
 */
import os from "node:os";
import { jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { startNats, type NatsHandle } from "../test/support/nats";
import { freePort } from "../test/support/ports";
import { median, nowMs } from "./lib/histogram";
import { LoadPool } from "./lib/pool";
import { cpuMs, rss, sleep, startServer, type ServerProc } from "./lib/procs";

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? (args[i + 1] ?? def) : def;
};
const chosen = args.filter((a, i) => !a.startsWith("--") && !(args[i - 1] ?? "").startsWith("--"));
const want = (name: string) => chosen.length === 0 || chosen.includes(name);

const CLIENTS = opt("clients", "2000,10000").split(",").map(Number);
const MESSAGES = Number(opt("messages", "100"));
const ROUNDS = Number(opt("rounds", "7"));
const WARMUP = 2;
const STORM_CLIENTS = Number(opt("storm-clients", "5000"));
const STORM_SPREAD = Number(opt("storm-spread", "3000"));
const DEEP = Number(opt("deep", "100000"));
const WORKERS = Number(opt("workers", "2"));
const STREAM = "BENCH";

type Kind = "gateway" | "naive" | "ideal" | "idle";

interface Ctx {
  nats: NatsHandle;
  nc: NatsConnection;
  js: JetStreamClient;
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
): Promise<ServerProc> {
  const port = await freePort();
  if (kind === "gateway") {
    const adminPort = await freePort();
    return startServer(
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
  }
  return startServer(
    "bench/references/bareServer.js",
    { NATS_URL: ctx.nats.url, MODE: kind, STREAM, SUBJECT: subject, BURST: String(MESSAGES) },
    port,
  );
}

/** Publishes `count` messages as fast as JetStream takes them (pipelined), returns the last seq. */
async function publishBurst(
  js: JetStreamClient,
  subject: string,
  count: number,
  round: number,
): Promise<number> {
  const pad = "x".repeat(48);
  const acks = [];
  for (let i = 0; i < count; i++)
    acks.push(js.publish(subject, `t=${nowMs()};r=${round};i=${i};${pad}`));
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

async function fanout(ctx: Ctx, clients: number): Promise<void> {
  const subject = "bench.fanout";
  log(
    `\n## Fan-out: ${fmt(clients)} clients on one subject, bursts of ${MESSAGES} messages, ${ROUNDS} rounds (+${WARMUP} warm-up)`,
  );
  const rows: Record<
    string,
    { rate: number; p50: number; p99: number; complete: string; cpu: number; clientCpu: number }
  > = {};
  for (const kind of ["gateway", "naive", "ideal"] as const) {
    const server = await startKind(kind, ctx, subject);
    const pool = new LoadPool(WORKERS);
    try {
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
      const rates: number[] = [];
      const p50s: number[] = [];
      const p99s: number[] = [];
      let complete = 0;
      let cpu = 0;
      let clientCpu = 0;
      const pid = server.child.pid as number;
      for (let r = 1; r <= WARMUP + ROUNDS; r++) {
        const waiting = pool.round(r, MESSAGES, 120_000);
        const cpu0 = cpuMs(pid);
        const clientCpu0 = pool.cpuMs();
        const t0 = nowMs();
        await publishBurst(ctx.js, subject, MESSAGES, r);
        const res = await waiting;
        if (r <= WARMUP) continue; // warm-up: JIT, consumer pulls, socket buffers
        cpu += cpuMs(pid) - cpu0;
        clientCpu += pool.cpuMs() - clientCpu0;
        complete += res.complete;
        rates.push(res.deliveries / ((res.lastAt - t0) / 1000));
        p50s.push(res.hist.percentile(0.5));
        p99s.push(res.hist.percentile(0.99));
        await sleep(200);
      }
      rows[kind] = {
        rate: median(rates),
        p50: median(p50s),
        p99: median(p99s),
        complete: `${complete}/${clients * ROUNDS}`,
        // Server CPU per delivery: what the server itself spends, whatever the load clients cost.
        cpu: (cpu * 1000) / (clients * MESSAGES * ROUNDS),
        clientCpu: (clientCpu * 1000) / (clients * MESSAGES * ROUNDS),
      };
      log(
        `${kind.padEnd(8)} deliveries/s ${fmt(rows[kind].rate).padStart(12)}   p50 ${fmt(rows[kind].p50, 1).padStart(8)} ms   p99 ${fmt(rows[kind].p99, 1).padStart(8)} ms   server CPU ${fmt(rows[kind].cpu, 2)} µs/delivery (clients ${fmt(rows[kind].clientCpu, 2)})   rounds complete ${rows[kind].complete}   (per round: ${rates.map((x) => fmt(x)).join(", ")})`,
      );
    } finally {
      pool.close();
      await server.stop();
    }
    await sleep(500);
  }
  const g = rows.gateway;
  const n = rows.naive;
  const i = rows.ideal;
  if (g && n && i)
    log(
      `ratios: gateway/naive deliveries ${fmt(g.rate / n.rate, 2)}x (target >= 3)   gateway/ideal ${fmt(g.rate / i.rate, 2)}x (target >= 0.8)   p99 gateway/naive ${fmt(g.p99 / n.p99, 2)}x (target <= 0.5)`,
    );
}

async function memory(ctx: Ctx, clients: number): Promise<void> {
  log(`\n## Memory per idle connection: ${fmt(clients)} connections held`);
  const per: Record<string, number> = {};
  for (const kind of ["gateway", "idle"] as const) {
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
      const label = kind === "idle" ? "bare node:http" : "gateway";
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

/**
 * K clients whose cursors are spread over the last messages reconnect at once to a fresh
 * instance. With the default window they resume from memory; `env` can shrink the window so
 * most of them need replay consumers instead.
 */
async function storm(
  ctx: Ctx,
  subject: string,
  label: string,
  env: Record<string, string> = {},
): Promise<void> {
  log(
    `\n## Reconnect storm${label}: ${fmt(STORM_CLIENTS)} clients, cursors spread over the last ${fmt(STORM_SPREAD)} messages, all at once to a fresh instance`,
  );
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
    const { opened, caught, target } = result;
    const expectedAll = expected + STORM_CLIENTS * (target - last);
    const lost = expectedAll - (caught.deliveries - caught.duplicates);
    log(`connected ${fmt(opened.ok)}/${fmt(STORM_CLIENTS)} ${JSON.stringify(opened.statuses)}`);
    log(
      `caught up ${fmt(caught.complete)}/${fmt(STORM_CLIENTS)} in ${fmt((caught.lastAt - t0) / 1000, 2)} s   events ${fmt(caught.deliveries)} (${fmt(caught.deliveries / ((caught.lastAt - t0) / 1000))}/s)`,
    );
    log(
      `lost ${fmt(lost)}   duplicates ${fmt(caught.duplicates)}   out-of-order/gaps ${fmt(caught.gaps)}   peak consumers on NATS ${peak} (1 feed + replays bounded by REPLAY_MAX_CONCURRENT=64)`,
    );
  } finally {
    pool.close();
    await server.stop();
  }
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
  const ctx: Ctx = { nats, nc, js: jetstream(nc) };
  try {
    if (want("fanout")) for (const n of CLIENTS) await fanout(ctx, n);
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
    if (want("deep")) await deep(ctx);
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
