/**
 * `make bench`: the gateway's benchmarks, each printing its figures (never asserting them).
 *
 *   npm run bench -- [fanout] [steady] [tracing] [memory] [storm] [auth] [deep] [capacity]
 *                    [--clients 2000,10000] [--messages 100] [--rounds 7]
 *                    [--steady-clients 2000,10000] [--steady-interval-ms 50,10]
 *                    [--steady-seconds 3] [--steady-rounds 3] [--steady-warmup-seconds 1]
 *                    [--tracing-clients 2000] [--storm-clients 5000] [--storm-spread 3000]
 *                    [--deep 100000] [--workers 2] [--capacity-clients 19000]
 *
 * No scenario named: all of them (bench/scenarios/, one file each).
 *
 * `fanout` and `steady` compare kinds of server side by side: the gateway, the bare node:http
 * references `naive` and `ideal` (bench/references/bareServer.ts), and the peers when installed
 * (`make bench` installs them): `nchan`, nginx + Nchan fed by a bridge process (one ordered
 * consumer, HTTP POSTs pipelined on one connection to Nchan's publisher), and `centrifugo`,
 * Centrifugo v6 with uni_sse and its own built-in JetStream consumer. All kinds run at once in
 * one process tree, each on a subject of its own with its clients connected and held in the
 * same load-client processes, each kind's clients from its own loopback addresses (127.0.1.x
 * gateway, .2 naive, .3 ideal, .4 nchan, .5 centrifugo: bench/lib/kinds.ts); the measured rounds
 * rotate through the kinds (gateway, naive, ideal, nchan, centrifugo, the order rotated by one
 * each round, 500 ms between two kinds), only the
 * measured kind getting messages, and every figure is the median of a kind's rounds. Per kind:
 * deliveries, CPU per delivery of the server alone and with nats-server's (and the bridge's,
 * for nchan), p50/p99 latency; then the gateway's ratios to naive and ideal (with their
 * targets) and to each peer.
 *
 * `fanout`: bursts of `--messages` per round, `--rounds` measured rounds per kind after 2
 * warm-up rounds, at each of `--clients`. `steady`: one message every interval (each of
 * `--steady-interval-ms`) for `--steady-seconds` after `--steady-warmup-seconds` per round,
 * `--steady-rounds` rounds per kind, at each of `--steady-clients`, on a drift-free schedule
 * (absolute due times; publishes pipelined, at most 16 awaiting their ack); also RSS growth.
 * `memory`: RSS per idle connection of the gateway, bare node:http and the peers, one at a
 * time. `tracing` is the gateway's fan-out with OpenTelemetry tracing off, on, off, on (OTLP/HTTP
 * to a local sink process; every message carries a W3C traceparent in both modes), medians per
 * mode and the on/off ratios. `storm`: reconnect storms of `--storm-clients` with cursors spread
 * over the last `--storm-spread` messages; `auth` the same with authorization off, HS256 and
 * ES256, one token per client; `deep`: one client `--deep` messages behind.
 *
 * Everything runs on loopback: one nats-server, each server under test in its own process(es),
 * and load clients in their own processes (raw sockets; HTTP chunking and SSE decoded for real).
 * `--workers` is their minimum number: more are forked when the open-file limit would not let
 * that many hold every kind's connections.
 */
import os from "node:os";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { startNats } from "../test/support/nats";
import type { Ctx } from "./lib/ctx";
import { STREAM } from "./lib/ctx";
import { ARGS, CLIENTS, STEADY_CLIENTS, TRACING_CLIENTS, want } from "./lib/options";
import { findPid } from "./lib/procs";
import { fmt, log } from "./lib/report";
import { deep } from "./scenarios/deep";
import { fanout } from "./scenarios/fanout";
import { memory } from "./scenarios/memory";
import { steady } from "./scenarios/steady";
import { auth, storm } from "./scenarios/storm";
import { capacity } from "./capacity";
import { tracing } from "./scenarios/tracing";

async function main(): Promise<void> {
  log(`# JetStream SSE Gateway benchmarks`);
  log(
    `machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? "cpu"}, ${fmt(os.totalmem() / 2 ** 30, 0)} GiB, ${os.platform()} ${os.release()}, Node ${process.version}`,
  );
  log(`date: ${new Date().toISOString()}   command: npm run bench -- ${ARGS.join(" ")}`);
  const nats = await startNats();
  const nc = await connect({ servers: nats.url });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: STREAM, subjects: ["bench.>"] });
  const natsPid = findPid("nats-server", String(nats.port));
  const ctx: Ctx = { nats, nc, js: jetstream(nc), jsm, natsPid };
  try {
    if (want("fanout")) for (const n of CLIENTS) await fanout(ctx, n);
    if (want("steady")) for (const n of STEADY_CLIENTS) await steady(ctx, n);
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
    if (want("capacity")) await capacity(ctx, ARGS);
  } finally {
    await nc.close();
    await nats.close();
  }
}

// Through process.exit, so that procs.ts's exit hook stops every server and load client.
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => process.exit(130));

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
