import { DeliverPolicy, type JetStreamClient } from "@nats-io/jetstream";
import type { Session } from "../sse/session";
import { unlimited, type ApiCall } from "./apiLimiter";
import { frameOf } from "./frames";

/** How often an idle replay checks whether its consumer still has anything pending, in ms. */
const REPLAY_IDLE_CHECK_MS = 2_500;

/** Where a replay begins: after a sequence, or at a time. */
export type ReplayFrom = { afterSeq: number } | { time: Date };

/** Settings for one replay. */
export interface ReplayOptions {
  stream: string;
  filters: readonly string[];
  from: ReplayFrom;
  /** Header whose value becomes the SSE `event:` (EVENT_TYPE_HEADER). */
  eventHeader: string;
  /** Messages requested per pull (REPLAY_BATCH, default 256). */
  batch: number;
  /** Checked after each message: true ends the replay early (the rest is in memory). */
  until?: () => boolean;
  /**
   * Longest wait for the client's socket to drain, in ms (REPLAY_STALL_TIMEOUT_MS): past it
   * the replay ends early, `stalled`, so its caller can give the slot back. Default: no limit.
   */
  stallMs?: number;
  /** Runs each JetStream API call (the pod's API limiter). Default: calls at once. */
  api?: ApiCall;
  /** Called for each message JetStream sends the consumer (sse_replay_messages_read_total). */
  onRead?: () => void;
}

/** How a replay ended. */
export interface ReplayResult {
  /** Events delivered. */
  delivered: number;
  /**
   * True when it ended because the client's socket had not drained for `stallMs`: the session
   * is positioned after its last delivered event, and a later replay continues from there.
   */
  stalled: boolean;
}

/**
 * Replays stored messages to one session through a temporary ordered consumer, until the
 * consumer reports nothing pending; the consumer is then deleted. The session already holds
 * live frames from its feed, so what the replay does not cover follows without a gap.
 *
 * Replay respects the socket: when the session's buffer fills, reading pauses until it drains,
 * so a deep replay costs a bounded amount of memory whatever its length; and when it has not
 * drained for `stallMs`, the replay ends (`stalled`), so a client that stopped reading does
 * not keep a replay slot and a consumer.
 */
export async function replay(
  js: JetStreamClient,
  session: Session,
  opts: ReplayOptions,
): Promise<ReplayResult> {
  const api = opts.api ?? unlimited;
  const start =
    "afterSeq" in opts.from
      ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: opts.from.afterSeq + 1 }
      : { deliver_policy: DeliverPolicy.StartTime, opt_start_time: opts.from.time.toISOString() };
  // Two API calls (stream info, consumer create), made one after the other under one slot.
  const consumer = await api(() =>
    js.consumers.get(opts.stream, {
      filter_subjects: [...opts.filters],
      ...start,
      // If this pod dies mid-replay, the server removes the consumer on its own.
      inactive_threshold: 30_000,
    }),
  );
  let delivered = 0;
  let stalled = false;
  try {
    const info = await consumer.info(true); // what the create answered: no API call
    if (info.num_pending === 0 || session.closed) return { delivered, stalled };
    const messages = await consumer.consume({ max_messages: opts.batch });
    const unhook = session.whenClosed(() => void messages.close().catch(() => undefined));
    // The end is the message that reports nothing pending. If the stream's limits remove the
    // last pending messages before they are sent, that message never comes: when the replay
    // has been idle a while, ask the consumer whether anything is left.
    // Done only if nothing is pending and everything the server sent has been handled.
    let idle = 0;
    let waitingForSocket = false;
    const watchdog = setInterval(() => {
      if (waitingForSocket || ++idle < 2) return;
      api(() => consumer.info())
        .then((ci) => {
          const handled = ci.delivered.stream_seq <= (session.lastSeq ?? 0);
          if (ci.num_pending === 0 && handled && idle >= 2) void messages.close();
        })
        .catch(() => undefined);
    }, REPLAY_IDLE_CHECK_MS);
    try {
      for await (const m of messages) {
        idle = 0;
        opts.onRead?.();
        if (session.deliverReplayed(frameOf(m, opts.eventHeader))) delivered++;
        if (m.info.pending === 0 || session.closed || opts.until?.()) break;
        if (session.congested) {
          waitingForSocket = true;
          const drained = await session.writable(opts.stallMs);
          waitingForSocket = false;
          if (!drained) {
            // What the consumer sent beyond the last delivered event is dropped with it; the
            // next replay starts after that event.
            stalled = true;
            break;
          }
        }
        if (session.closed) break;
      }
    } finally {
      clearInterval(watchdog);
      unhook();
      await messages.close().catch(() => undefined);
    }
  } finally {
    await api(() => consumer.delete(), { cleanup: true }).catch(() => undefined);
  }
  return { delivered, stalled };
}
