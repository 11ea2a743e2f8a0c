/**
 * Steady traffic: every kind holds `clients` connections on a subject of its own; for each
 * interval, the rounds rotate through the kinds, each round one message every `intervalMs` on
 * the measured kind's subject for STEADY_WARMUP_SECONDS (unmeasured) + STEADY_SECONDS, on a
 * drift-free schedule; per kind, medians over its STEADY_ROUNDS rounds.
 */
import {
  cpuMark,
  roundOrder,
  SETTLE_MS,
  cpuSince,
  withContenders,
  type Contender,
} from "../lib/contenders";
import type { Ctx } from "../lib/ctx";
import { median, nowMs } from "../lib/histogram";
import type { Kind } from "../lib/kinds";
import {
  STEADY_IN_FLIGHT,
  STEADY_INTERVALS,
  STEADY_ROUNDS,
  STEADY_SECONDS,
  STEADY_WARMUP_SECONDS,
} from "../lib/options";
import {
  cpuText,
  medianPerDelivery,
  peerRatioLines,
  perDelivery,
  type PerDelivery,
} from "../lib/perDelivery";
import { LoadPool } from "../lib/pool";
import { closedText } from "./fanout";
import { rss, sleep } from "../lib/procs";
import { payload, publishOne } from "../lib/publish";
import { fmt, log, ratio } from "../lib/report";
import { publishSteady } from "../lib/steady";

/** What one steady round of one kind measured, over its measured period. */
interface SteadySample {
  expected: number;
  deliveries: number;
  /** Clients that got every measured message. */
  complete: number;
  /** Connections the server had closed by the end of the round. */
  closed: number;
  p50: number;
  p99: number;
  cpu: PerDelivery;
  /** RSS of the server at the end of the measured period minus at its start, in bytes. */
  rssGrowth: number;
  /** Whether its clients went quiet within 10 s of the round's end (no backlog left). */
  caughtUp: boolean;
  /** How late the publisher was against its schedule: worst, in ms, and how many > 1 ms. */
  lateMaxMs: number;
  lateOver1Ms: number;
}

/** Round ids of steady rounds: unique over the whole run (warm-up messages carry 0). */
let nextRound = 1;

/**
 * One steady round of `c`: publishes for STEADY_WARMUP_SECONDS + STEADY_SECONDS (a bounded
 * count, on absolute due times) and waits until every client has every measured message (or a
 * grace of 5 s). The references run with BURST=1: one message at a time, there is no burst to
 * gather, so each is written to every client as it comes (ideal then does naive's work).
 */
async function steadyRound(
  ctx: Ctx,
  pool: LoadPool,
  c: Contender,
  clients: number,
  intervalMs: number,
): Promise<SteadySample> {
  const round = nextRound++;
  const warm = Math.round((STEADY_WARMUP_SECONDS * 1000) / intervalMs);
  const measured = Math.round((STEADY_SECONDS * 1000) / intervalMs);
  const waiting = pool.round(
    round,
    measured,
    (STEADY_WARMUP_SECONDS + STEADY_SECONDS) * 1000 + 5_000,
    c.source.group,
  );
  const pid = c.server.child.pid as number;
  // CPU over the whole round, warm-up included, divided by every message the kind delivered
  // meanwhile: a kind that falls behind works off earlier messages in the measured time, and
  // dividing by the measured messages alone would charge it for them twice.
  const m0 = cpuMark(ctx, c, pool);
  let rss0 = NaN;
  const sent = await publishSteady({
    intervalMs,
    count: warm + measured,
    startAt: nowMs() + 100,
    maxInFlight: STEADY_IN_FLIGHT,
    beforeEach: (k) => {
      if (k === warm) rss0 = rss(pid);
    },
    payload: (k) => payload(k < warm ? 0 : round, k),
    publish: (p) => publishOne(ctx.js, c.subject, p, c.publish),
  });
  const res = await waiting;
  const cpu = cpuSince(ctx, c, pool, m0);
  const rssGrowth = rss(pid) - rss0;
  // Before the next kind's round: a kind still delivering would compete with it for the CPU.
  const caughtUp = await pool.quiet(c.source.group, 500, 10_000);
  return {
    expected: clients * measured,
    deliveries: res.deliveries,
    complete: res.complete,
    closed: res.closed,
    p50: res.hist.percentile(0.5),
    p99: res.hist.percentile(0.99),
    cpu: perDelivery(cpu, res.all),
    rssGrowth,
    caughtUp,
    lateMaxMs: sent.lateMaxMs,
    lateOver1Ms: sent.lateOver1Ms,
  };
}

interface SteadyRow {
  p50: number;
  p99: number;
  cpu: PerDelivery;
}

function steadyLine(kind: Kind, clients: number, samples: SteadySample[], row: SteadyRow): string {
  const sum = (f: (s: SteadySample) => number) => samples.reduce((n, s) => n + f(s), 0);
  const lateMax = Math.max(...samples.map((s) => s.lateMaxMs));
  const rssGrowth = median(samples.map((s) => s.rssGrowth));
  const behind = samples.filter((s) => !s.caughtUp).length;
  return `${kind.padEnd(10)} deliveries ${fmt(sum((s) => s.deliveries))}/${fmt(sum((s) => s.expected))}   p50 ${fmt(row.p50, 1).padStart(8)} ms   p99 ${fmt(row.p99, 1).padStart(8)} ms   ${cpuText(kind, row.cpu)}   RSS growth ${fmt(rssGrowth / 1024)} kB   clients complete ${fmt(sum((s) => s.complete))}/${fmt(clients * samples.length)}${closedText(Math.max(0, ...samples.map((s) => s.closed)))}   (publisher late: max ${fmt(lateMax, 1)} ms, ${sum((s) => s.lateOver1Ms)} > 1 ms)${behind > 0 ? `   still delivering 10 s after ${behind} of its rounds: falls behind at this rate` : ""}`;
}

/** All the steady intervals at `clients` connections per kind, the same servers throughout. */
export async function steady(ctx: Ctx, clients: number): Promise<void> {
  await withContenders(ctx, "steady", clients, 1, async (cs, pool, kinds) => {
    for (const intervalMs of STEADY_INTERVALS) {
      log(
        `\n## Steady: ${fmt(clients)} clients on one subject, one message every ${fmt(intervalMs)} ms (${fmt(1000 / intervalMs)}/s), ${STEADY_ROUNDS} rounds of ${fmt(STEADY_SECONDS)} s (+${fmt(STEADY_WARMUP_SECONDS)} s warm-up) per kind, kinds interleaved (${kinds.join(", ")}), medians; drift-free schedule, publishes pipelined (at most ${STEADY_IN_FLIGHT} awaiting their ack), references writing each message as it comes`,
      );
      const samples = new Map<Kind, SteadySample[]>(kinds.map((k) => [k, []]));
      for (let r = 0; r < STEADY_ROUNDS; r++)
        for (const c of roundOrder(cs, r)) {
          samples.get(c.kind)?.push(await steadyRound(ctx, pool, c, clients, intervalMs));
          await sleep(SETTLE_MS);
        }
      const rows: Partial<Record<Kind, SteadyRow>> = {};
      for (const kind of kinds) {
        const list = samples.get(kind) ?? [];
        const row = {
          p50: median(list.map((s) => s.p50)),
          p99: median(list.map((s) => s.p99)),
          cpu: medianPerDelivery(list.map((s) => s.cpu)),
        };
        rows[kind] = row;
        log(steadyLine(kind, clients, list, row));
      }
      const { gateway: g, naive: n, ideal: i } = rows;
      if (g && n && i)
        log(
          `gateway/naive CPU per delivery ${ratio(g.cpu.server, n.cpu.server)}   gateway/ideal ${ratio(g.cpu.server, i.cpu.server)}   p99 gateway/ideal ${ratio(g.p99, i.p99)}`,
        );
      for (const line of peerRatioLines(rows)) log(line);
    }
  });
}
