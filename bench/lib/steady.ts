/**
 * A drift-free steady publisher: message k is due at `startAt + k * intervalMs` (absolute
 * times, so timer lateness never accumulates the way a setInterval's does). Publishes are
 * pipelined: at most `maxInFlight` JetStream publishes await their ack at once; when that many
 * are pending, the next one waits for one of them (and counts as late if that makes it miss its
 * time). A late message goes out as soon as it can; the following ones keep their own times.
 */
import { nowMs } from "./histogram";
import { sleep } from "./procs";

export interface SteadyOptions {
  intervalMs: number;
  /** How many messages in all (bounded: the loop runs exactly this many times). */
  count: number;
  /** When message 0 is due, in {@link nowMs} time. */
  startAt: number;
  maxInFlight: number;
  /** Called just before message k is published (a measurement can start there). */
  beforeEach?: (k: number) => void;
  /** The payload of message k, built at the moment it is published. */
  payload: (k: number) => string;
  publish: (payload: string) => Promise<unknown>;
}

export interface SteadyStats {
  sent: number;
  /** How late messages went out against their due times, in ms: the worst, and how many > 1 ms. */
  lateMaxMs: number;
  lateOver1Ms: number;
}

export async function publishSteady(o: SteadyOptions): Promise<SteadyStats> {
  const inFlight = new Set<Promise<unknown>>();
  let failure: unknown;
  const stats: SteadyStats = { sent: 0, lateMaxMs: 0, lateOver1Ms: 0 };
  for (let k = 0; k < o.count; k++) {
    const due = o.startAt + k * o.intervalMs;
    const wait = due - nowMs();
    if (wait > 0) await sleep(wait);
    while (inFlight.size >= o.maxInFlight) await Promise.race(inFlight);
    if (failure !== undefined) break;
    const late = nowMs() - due;
    if (late > stats.lateMaxMs) stats.lateMaxMs = late;
    if (late > 1) stats.lateOver1Ms++;
    o.beforeEach?.(k);
    const p: Promise<unknown> = o.publish(o.payload(k)).then(
      () => inFlight.delete(p),
      (err: unknown) => {
        failure ??= err;
        inFlight.delete(p);
      },
    );
    inFlight.add(p);
    stats.sent++;
  }
  await Promise.all(inFlight);
  if (failure !== undefined) throw failure instanceof Error ? failure : new Error(String(failure));
  return stats;
}
