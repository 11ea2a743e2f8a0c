/**
 * Fan-out: every kind holds `clients` connections on a subject of its own; the rounds rotate
 * through the kinds (round r: gateway, naive, ideal, nchan, centrifugo, rotated by one each
 * round, with a settling pause between two kinds), each round a burst of
 * MESSAGES published on the measured kind's subject only; per kind, medians over its rounds.
 */
import {
  roundOrder,
  SETTLE_MS,
  withContenders,
  cpuMark,
  cpuSince,
  type Contender,
} from "../lib/contenders";
import type { Ctx } from "../lib/ctx";
import { median, nowMs } from "../lib/histogram";
import { comparedKinds, type Kind } from "../lib/kinds";
import { MESSAGES, ROUNDS, WARMUP } from "../lib/options";
import {
  cpuText,
  medianPerDelivery,
  peerRatioLines,
  perDelivery,
  type PerDelivery,
} from "../lib/perDelivery";
import { LoadPool } from "../lib/pool";
import { sleep } from "../lib/procs";
import { publishBurst } from "../lib/publish";
import { fmt, log, ratio } from "../lib/report";

/** What one fan-out round of one kind measured. */
export interface FanoutSample {
  /** Deliveries per second, from the publish to the last delivery. */
  rate: number;
  p50: number;
  p99: number;
  /** Clients that got the whole burst. */
  complete: number;
  /** Connections the server had closed by the end of the round (a round does not wait for them). */
  closed: number;
  cpu: PerDelivery;
}

/**
 * One burst of MESSAGES (round `r`) on `c`'s subject, waiting for its clients (120 s at most).
 * With `traceparent`, every message carries a `traceparent` header of its own.
 */
export async function fanoutRound(
  ctx: Ctx,
  pool: LoadPool,
  c: Contender,
  r: number,
  traceparent = false,
): Promise<FanoutSample> {
  const waiting = pool.round(r, MESSAGES, 120_000, c.source.group);
  const m0 = cpuMark(ctx, c, pool);
  const t0 = nowMs();
  await publishBurst(ctx.js, c.subject, MESSAGES, r, { ...c.publish, traceparent });
  const res = await waiting;
  const cpu = cpuSince(ctx, c, pool, m0);
  return {
    rate: res.deliveries / ((res.lastAt - t0) / 1000),
    p50: res.hist.percentile(0.5),
    p99: res.hist.percentile(0.99),
    complete: res.complete,
    closed: res.closed,
    // Per message delivered meanwhile (the burst's, unless an earlier one timed out).
    cpu: perDelivery(cpu, res.all),
  };
}

/** A kind's fan-out figures: medians over its measured rounds. */
export interface FanoutRow {
  rate: number;
  p50: number;
  p99: number;
  cpu: PerDelivery;
  /** `complete/expected` clients over all its measured rounds, and connections closed. */
  complete: string;
  rates: number[];
}

/** ` (N connections closed by the server)`, or nothing when none was. */
export function closedText(closed: number): string {
  return closed > 0 ? ` (${fmt(closed)} connections closed by the server)` : "";
}

export function fanoutRow(samples: FanoutSample[], clients: number): FanoutRow {
  return {
    rate: median(samples.map((s) => s.rate)),
    p50: median(samples.map((s) => s.p50)),
    p99: median(samples.map((s) => s.p99)),
    cpu: medianPerDelivery(samples.map((s) => s.cpu)),
    complete:
      `${samples.reduce((n, s) => n + s.complete, 0)}/${clients * samples.length}` +
      closedText(Math.max(0, ...samples.map((s) => s.closed))),
    rates: samples.map((s) => s.rate),
  };
}

export function fanoutLine(label: string, kind: Kind, row: FanoutRow): string {
  return `${label.padEnd(10)} deliveries/s ${fmt(row.rate).padStart(12)}   p50 ${fmt(row.p50, 1).padStart(8)} ms   p99 ${fmt(row.p99, 1).padStart(8)} ms   ${cpuText(kind, row.cpu)}   rounds complete ${row.complete}   (per round: ${row.rates.map((x) => fmt(x)).join(", ")})`;
}

export async function fanout(ctx: Ctx, clients: number): Promise<void> {
  log(
    `\n## Fan-out: ${fmt(clients)} clients on one subject, bursts of ${MESSAGES} messages, ${ROUNDS} rounds (+${WARMUP} warm-up) per kind, kinds interleaved (${comparedKinds().join(", ")}), medians`,
  );
  await withContenders(ctx, "fanout", clients, MESSAGES, async (cs, pool, kinds) => {
    const samples = new Map<Kind, FanoutSample[]>(kinds.map((k) => [k, []]));
    for (let r = 1; r <= WARMUP + ROUNDS; r++)
      for (const c of roundOrder(cs, r)) {
        const s = await fanoutRound(ctx, pool, c, r);
        // Warm-up: JIT, consumer pulls, socket buffers.
        if (r > WARMUP) samples.get(c.kind)?.push(s);
        await sleep(SETTLE_MS);
      }
    const rows: Partial<Record<Kind, FanoutRow>> = {};
    for (const kind of kinds) {
      const row = fanoutRow(samples.get(kind) ?? [], clients);
      rows[kind] = row;
      log(fanoutLine(kind, kind, row));
    }
    const { gateway: g, naive: n, ideal: i } = rows;
    if (g && n && i)
      log(
        `ratios: gateway/naive deliveries ${ratio(g.rate, n.rate)} (target >= 3)   gateway/ideal ${ratio(g.rate, i.rate)} (target >= 0.8)   p99 gateway/naive ${ratio(g.p99, n.p99)} (target <= 0.5)`,
      );
    for (const line of peerRatioLines(rows)) log(line);
  });
}
