import { ApiLimiter } from "./apiLimiter";
import { Limiter, type Closable } from "./limiter";
import type { SharedReplays } from "./sharedReplay";

export type { Closable } from "./limiter";

/** Thrown when the replay queue is full: the session is shed with a retry hint. */
export class ReplayQueueFullError extends Error {
  override readonly name = "ReplayQueueFullError";
  constructor() {
    super("too many replays waiting");
  }
}

/** Optional bounds of a {@link ReplayLimiter}; see the README for each variable. */
export interface ReplayLimiterOptions {
  /**
   * Replay slots one client address may hold at once (REPLAY_MAX_PER_CLIENT, default 8). Its
   * further replays wait, and the slots they cannot take go to other addresses' replays.
   * Default here: no bound beyond `maxConcurrent`.
   */
  maxPerClient?: number;
  /**
   * How long a replay may wait for its client's socket to drain before it gives its slot back,
   * in ms (REPLAY_STALL_TIMEOUT_MS, default 5000). Default here: as long as it takes.
   */
  stallMs?: number;
  /** The pod's JetStream API limiter, for the calls replays and cursor checks make. */
  api?: ApiLimiter;
  /** Called when a replay has to wait because its client address holds its share of slots. */
  onClientLimited?: () => void;
}

/**
 * Bounds how many replay consumers run at once, so a reconnect storm queues replays instead
 * of opening thousands of consumers on NATS together (invariant 2). FIFO, and bounded too.
 *
 * A slot is never held by a client that does not read: a replay whose socket stays full for
 * `stallMs` gives its slot back (see attach.ts), and one client address holds at most
 * `maxPerClient` slots, so clients that stop reading cannot starve everyone else's resumes.
 * The request path reaches the pod's JetStream API limiter through here too (`api`).
 */
export class ReplayLimiter {
  /** A replay waiting this long for its socket gives its slot back, in ms. */
  readonly stallMs: number | undefined;
  /** The pod's JetStream API limiter (unbounded unless one is given). */
  readonly api: ApiLimiter;
  /**
   * Replays shared among the sessions of a feed whose cursors are close (set by the
   * composition root; none: every replay reads for one session). A shared run holds one slot
   * like a replay, counted against the client address of the session that started it; the
   * sessions that join it hold none.
   */
  shared: SharedReplays | undefined;
  private readonly slots: Limiter;

  /**
   * @param maxConcurrent replays running at once (REPLAY_MAX_CONCURRENT).
   * @param maxQueued replays allowed to wait (REPLAY_MAX_QUEUED).
   * @param onChange reports (active, queued) after every change, for metrics.
   * @param opts the per-client bound, the stall timeout and the API limiter.
   */
  constructor(
    maxConcurrent: number,
    maxQueued: number,
    onChange: (active: number, queued: number) => void = () => {},
    opts: ReplayLimiterOptions = {},
  ) {
    this.stallMs = opts.stallMs;
    this.api = opts.api ?? new ApiLimiter(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    this.slots = new Limiter({
      maxConcurrent,
      maxQueued,
      maxPerKey: opts.maxPerClient,
      queueFull: () => new ReplayQueueFullError(),
      onChange,
      onKeyLimited: opts.onClientLimited,
    });
  }

  get running(): number {
    return this.slots.running;
  }

  get queued(): number {
    return this.slots.queued;
  }

  /**
   * Waits for a slot; the returned function gives it back (call it exactly once).
   * @param waiter when it closes while queued, its place is given up and the wait rejects.
   * @param client the client address whose share of slots this one counts against.
   */
  acquire(waiter?: Closable, client?: string): Promise<() => void> {
    return this.slots.acquire(waiter, client);
  }
}
