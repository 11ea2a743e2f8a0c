/**
 * The gateway's fan-out with tracing off and on: runs off, on, off, on (separate processes, one
 * at a time, so that each run's exported spans can be counted apart; the pairs keep drift from
 * favouring one mode), medians per mode over the rounds of its runs. Every message carries a
 * `traceparent` in both modes: the only difference is the gateway's tracing. Spans go over
 * OTLP/HTTP (protobuf) to a sink in a process of its own.
 */
import { startContenders, stopContenders, type Contender } from "../lib/contenders";
import type { Ctx } from "../lib/ctx";
import { MESSAGES, ROUNDS, WARMUP, WORKERS } from "../lib/options";
import { forkOtlpSink, type SinkCounts } from "../lib/otlpSink";
import { LoadPool } from "../lib/pool";
import { sleep } from "../lib/procs";
import { fmt, log, ratio } from "../lib/report";
import { fanoutLine, fanoutRound, fanoutRow, type FanoutSample } from "./fanout";

/** One gateway run of WARMUP + ROUNDS bursts with `env`; stopped (spans flushed) on return. */
async function gatewayRun(
  ctx: Ctx,
  clients: number,
  subject: string,
  env: Record<string, string>,
): Promise<FanoutSample[]> {
  const pool = new LoadPool(WORKERS);
  let cs: Contender[] = [];
  try {
    cs = await startContenders(ctx, pool, [{ kind: "gateway", subject, extra: env }], clients, 1);
    const samples: FanoutSample[] = [];
    for (let r = 1; r <= WARMUP + ROUNDS; r++) {
      const s = await fanoutRound(ctx, pool, cs[0] as Contender, r, true);
      if (r > WARMUP) samples.push(s);
      await sleep(200);
    }
    return samples;
  } finally {
    await stopContenders(cs);
    pool.close();
  }
}

export async function tracing(ctx: Ctx, clients: number): Promise<void> {
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
    const samples: Record<"off" | "on", FanoutSample[]> = { off: [], on: [] };
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
        samples[mode].push(...(await gatewayRun(ctx, clients, subject, env[mode])));
        // The gateway has stopped, so its last spans have been flushed to the sink.
        const after = await sink.counts();
        sent[mode].requests += after.requests - before.requests;
        sent[mode].bytes += after.bytes - before.bytes;
        sent[mode].other += after.other - before.other;
        await sleep(500);
      }
    const off = fanoutRow(samples.off, clients);
    const on = fanoutRow(samples.on, clients);
    log(fanoutLine("off", "gateway", off));
    log(fanoutLine("on", "gateway", on));
    log(`spans exported: ${fmt(sent.on.requests)} requests, ${fmt(sent.on.bytes / 1024, 1)} kB`);
    if (sent.off.requests + sent.off.other > 0)
      log(
        `note: the sink got ${sent.off.requests + sent.off.other} requests while tracing was off`,
      );
    if (sent.on.other > 0)
      log(`note: the sink got ${sent.on.other} requests other than POST /v1/traces`);
    log(
      `tracing on/off: deliveries ${ratio(on.rate, off.rate)} (target >= 0.8)   server CPU per delivery ${ratio(on.cpu.server, off.cpu.server)}   p99 ${ratio(on.p99, off.p99)}`,
    );
  } finally {
    await sink.close();
  }
}
