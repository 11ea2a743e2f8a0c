import { DeliverPolicy, type JetStreamClient, type JsMsg } from "@nats-io/jetstream";
import type { StreamSnapshot } from "./streamMonitor";

/**
 * What JetStream adds to a stored message on its way to a consumer, at most: the ack reply
 * subject (stream and consumer names, five numbers), against the store's own overhead.
 */
const DELIVERY_OVERHEAD = 128;

/**
 * Where a new feed starts reading history to fill its window, so that what it reads stays within
 * `budgetBytes`: the stream's last sequences whose delivered size, at the stream's average
 * message size, makes up three quarters of the budget (the rest absorbs a tail somewhat heavier
 * than the average). Matching messages are a subset of those sequences, so a filtered feed
 * reads less. Returns `last + 1` (read nothing) when the budget is 0 or the stream is empty.
 */
export function warmUpStart(snapshot: StreamSnapshot, budgetBytes: number): number {
  const first = Math.max(1, snapshot.first);
  const end = snapshot.last + 1;
  if (budgetBytes <= 0 || snapshot.last < first || snapshot.messages <= 0) return end;
  const perMessage = snapshot.bytes / snapshot.messages + DELIVERY_OVERHEAD;
  const sequences = Math.floor((budgetBytes * 3) / 4 / perMessage);
  if (sequences >= snapshot.messages) return first;
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

/** Bytes never worth a pull: the budget is spent. */
const MIN_PULL_BYTES = 256;

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
      if (left < MIN_PULL_BYTES) return { ...result, stopped: "budget" };
      if (time < 1_000) return { ...result, stopped: "timeout" };
      const batch = await consumer.fetch({
        max_bytes: left,
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
        // JetStream ends a pull with a 409 status when its batch is complete (nats.js turns it
        // into an error: the next pull follows) or when the next message is larger than
        // max_bytes (the budget is spent).
        const message = (err as Error).message;
        if (/batch completed/i.test(message) && received > 0) continue;
        return { ...result, stopped: /max_?bytes/i.test(message) ? "budget" : "error" };
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

/**
 * An upper bound of the bytes JetStream counts for a message against a pull's max_bytes:
 * subject, ack reply subject, headers and payload. The reply is rebuilt from the delivery info
 * (`$JS.ACK.[<domain>.<account>.]<stream>.<consumer>.<5 numbers>[.<token>]`), with room for the
 * token of the newer form.
 */
export function wireSize(m: JsMsg): number {
  const i = m.info;
  const numbers = [i.deliveryCount, i.streamSequence, i.deliverySequence, i.pending];
  const reply =
    8 + // "$JS.ACK."
    (i.domain?.length ?? 0) +
    (i.account_hash?.length ?? 0) +
    i.stream.length +
    i.consumer.length +
    numbers.reduce((n, x) => n + String(x).length, 0) +
    20 + // the timestamp in nanoseconds
    12 + // the dots
    32; // the newer form's domain placeholder and random token
  let size = m.subject.length + reply + m.data.length;
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
