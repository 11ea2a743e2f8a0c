import { DeliverPolicy, type JetStreamClient, type JsMsg } from "@nats-io/jetstream";
import type { StreamSnapshot } from "./streamMonitor";

/**
 * Where a new feed starts reading history to fill its window, so that what it reads stays within
 * `budgetBytes`: the stream's last sequences whose stored bytes, at the stream's average message
 * size, make up three quarters of the budget (the rest absorbs a tail somewhat heavier than the
 * average). Matching messages are a subset of those sequences, so a filtered feed reads less.
 * Returns `last + 1` (read nothing) when the budget is 0 or the stream is empty.
 */
export function warmUpStart(snapshot: StreamSnapshot, budgetBytes: number): number {
  const first = Math.max(1, snapshot.first);
  const end = snapshot.last + 1;
  if (budgetBytes <= 0 || snapshot.last < first || snapshot.messages <= 0) return end;
  if (snapshot.bytes <= (budgetBytes * 3) / 4) return first;
  const average = snapshot.bytes / snapshot.messages;
  const sequences = Math.floor((budgetBytes * 3) / 4 / average);
  return sequences <= 0 ? end : Math.max(first, end - sequences);
}

/** What a warm-up read. */
export interface WarmUpResult {
  /** True when it reached `until` (or everything there was); false: the window must start over. */
  complete: boolean;
  /** Why it stopped short: the byte budget, the time limit, or a NATS error. */
  stopped?: "budget" | "timeout" | "error";
  /** Bytes counted against the budget (an upper bound of what JetStream sent). */
  bytes: number;
  messages: number;
}

export interface WarmUpOptions {
  stream: string;
  filters: readonly string[];
  /** First sequence to read. */
  from: number;
  /** Done once a message at or past this sequence arrived, or nothing more is pending. */
  until: number;
  /** Most bytes JetStream may send (FEED_WARMUP_BYTES). */
  budgetBytes: number;
  /** Longest the warm-up may take, in milliseconds. */
  timeoutMs: number;
  /** Each message, in stream order. */
  onMessage: (m: JsMsg) => void;
  /** Checked between pulls: true stops the warm-up (its feed closed). */
  cancelled: () => boolean;
}

/**
 * Over-counts each message by this many bytes for what JetStream adds to it on the wire (the
 * ack reply subject, about 100 characters), so the count stays above what the server sends.
 */
const WIRE_ALLOWANCE = 160;

/**
 * Reads a feed's history through a temporary ordered consumer with pulls bounded in bytes: each
 * pull asks for at most what is left of the budget (JetStream never sends more than a pull's
 * `max_bytes`), so a warm-up moves at most `budgetBytes` however large the messages are. A
 * message that does not fit what is left ends the warm-up short (`complete: false`): a window
 * must hold every matching message up to its end, so a partial one is of no use.
 */
export async function warmUp(js: JetStreamClient, opts: WarmUpOptions): Promise<WarmUpResult> {
  const result: WarmUpResult = { complete: false, bytes: 0, messages: 0 };
  const consumer = await js.consumers.get(opts.stream, {
    filter_subjects: [...opts.filters],
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: opts.from,
    // If this pod dies mid-warm-up, the server removes the consumer on its own.
    inactive_threshold: 30_000,
  });
  const deadline = performance.now() + opts.timeoutMs;
  try {
    if ((await consumer.info(true)).num_pending === 0) return { ...result, complete: true };
    for (let pulls = 0; pulls < 1_000_000; pulls++) {
      const left = opts.budgetBytes - result.bytes;
      const time = deadline - performance.now();
      if (opts.cancelled()) return result;
      if (left <= WIRE_ALLOWANCE) return { ...result, stopped: "budget" };
      if (time < 1_000) return { ...result, stopped: "timeout" };
      const batch = await consumer.fetch({
        max_bytes: left - WIRE_ALLOWANCE,
        // Whole milliseconds: nats.js derives the heartbeat from it, and the server refuses
        // a fractional duration.
        expires: Math.floor(Math.min(time, 30_000)),
      });
      let received = 0;
      try {
        for await (const m of batch) {
          received++;
          result.messages++;
          result.bytes += wireSize(m);
          opts.onMessage(m);
          if (m.seq >= opts.until || m.info.pending === 0) return { ...result, complete: true };
        }
      } catch (err) {
        // JetStream ends a pull whose next message is larger than its max_bytes with a 409.
        const overBudget = /max_?bytes/i.test((err as Error).message);
        return { ...result, stopped: overBudget ? "budget" : "error" };
      }
      // A pull that expired empty: NATS trouble, or the stream lost what was pending.
      if (received === 0) return { ...result, stopped: "timeout" };
    }
    return result;
  } catch {
    return { ...result, stopped: "error" };
  } finally {
    await consumer.delete().catch(() => undefined);
  }
}

/** An upper bound of the bytes JetStream counts for a message against a pull's max_bytes. */
function wireSize(m: JsMsg): number {
  let size = m.subject.length + m.data.length + WIRE_ALLOWANCE;
  try {
    const h = m.headers;
    if (h) {
      size += 12; // "NATS/1.0\r\n" and the final "\r\n"
      for (const k of h.keys()) for (const v of h.values(k)) size += k.length + v.length + 4;
    }
  } catch {
    size += 1_024; // headers nats.js cannot decode: count them generously
  }
  return size;
}
