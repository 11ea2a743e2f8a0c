import { ROOT_CONTEXT, context } from "@opentelemetry/api";
import type { Session } from "../sse/session";
import { Feed, type FeedDeps, type FeedHost, type FeedOptions } from "./feed";
import {
  isStreamNotFound,
  StreamMonitor,
  type Removed,
  type StreamSnapshot,
} from "./streamMonitor";
import { TokenBucket } from "./tokenBucket";

/** This instance runs MAX_FEEDS feeds and none is idle: the request is shed with a retry hint. */
export class FeedLimitError extends Error {
  override readonly name = "FeedLimitError";
  constructor(readonly max: number) {
    super(`this instance runs its ${max} feeds (MAX_FEEDS); retry`);
  }
}

/** New feeds are being created faster than FEED_CREATE_RATE: the request is shed with a retry hint. */
export class FeedRateError extends Error {
  override readonly name = "FeedRateError";
  constructor(readonly perSecond: number) {
    super(`new subject sets arrive faster than ${perSecond} per second (FEED_CREATE_RATE); retry`);
  }
}

/** Settings of the registry on top of each feed's; see the README for each variable. */
export interface FeedRegistryOptions extends FeedOptions {
  /** How long an unused feed stays open, in milliseconds (FEED_LINGER_MS). */
  lingerMs: number;
  /** Most unused feeds kept open at once (FEED_LINGER_MAX). */
  maxLingering: number;
  /** Feeds per instance, lingering ones included (MAX_FEEDS, default 10000). Default: unbounded. */
  maxFeeds?: number;
  /** New feeds per second, bursts of as many (FEED_CREATE_RATE, default 50). Default: unbounded. */
  createRate?: number;
  /** How often the watchdog looks at every feed, in ms (FEED_WATCHDOG_MS, default 6000); 0: never. */
  watchdogMs?: number;
  /**
   * How long ago a stream's state may have been checked for a window to serve a joining
   * session, in ms (WINDOW_CHECK_MS, default 1000); 0 checks for every session. Default 1000.
   */
  windowCheckMs?: number;
}

/** Consumer replacements that run at once (after a reconnect every feed needs one). */
const RESTART_CONCURRENCY = 16;
/** Streams the watchdog checks at once. */
const WATCHDOG_CONCURRENCY = 8;

/**
 * The pod's feeds by (stream, filter set). A feed lives while it has sessions, and lingers
 * `lingerMs` after the last one leaves so that reconnects (which usually land within seconds)
 * find its window still warm.
 *
 * It also bounds what feeds cost: how many exist (MAX_FEEDS) and how fast new ones start
 * (FEED_CREATE_RATE), since each new subject set costs JetStream a consumer and a warm-up read;
 * keeps feeds alive (a reconnect replaces every consumer, a watchdog replaces stalled ones);
 * and keeps windows honest (a stream state checked at most WINDOW_CHECK_MS before a window
 * serves a session, so purged or erased messages are not served from memory).
 */
export class FeedRegistry {
  private readonly feeds = new Map<string, Feed>();
  private readonly byStream = new Map<string, Set<Feed>>();
  private readonly lingering = new Map<Feed, NodeJS.Timeout>();
  private readonly monitor: StreamMonitor;
  private readonly bucket: TokenBucket | undefined;
  private readonly host: FeedHost;
  private readonly watchdogTimer: NodeJS.Timeout | undefined;
  private restartsRunning = 0;
  private readonly restartsWaiting: Array<() => void> = [];
  private connected = true;
  private closed = false;
  private ticking = false;

  /**
   * @param onFeedEnded called with the sessions of a feed that ended by itself (its stream went
   * away or was recreated, it lost messages, or its consumer could not be replaced).
   */
  constructor(
    private readonly opts: FeedRegistryOptions,
    private readonly deps: FeedDeps,
    private readonly onFeedEnded: (sessions: Session[]) => void,
  ) {
    this.monitor = new StreamMonitor(deps.jsm, (stream, snapshot, removed) =>
      this.onSnapshot(stream, snapshot, removed),
    );
    this.bucket = opts.createRate ? new TokenBucket(opts.createRate) : undefined;
    this.host = {
      monitor: this.monitor,
      restartSlot: (fn) => this.restartSlot(fn),
      ended: (f) => this.ended(f),
    };
    const every = opts.watchdogMs ?? 6_000;
    if (every > 0) {
      this.watchdogTimer = setInterval(() => void this.tick(), every);
      this.watchdogTimer.unref();
    }
    if (deps.nc) void this.followConnection(deps.nc);
  }

  static key(stream: string, filters: readonly string[]): string {
    return `${stream}\u0000${filters.join("\u0000")}`;
  }

  /** Feeds open on this instance (starting, serving or lingering). */
  get size(): number {
    return this.feeds.size;
  }

  /** Feeds whose live consumer is being replaced now. */
  get stalled(): number {
    let n = 0;
    for (const f of this.feeds.values()) if (f.stalled) n++;
    return n;
  }

  /**
   * The running feed for (stream, filters), started if needed; the session joins it. A new
   * feed may be refused ({@link FeedLimitError}, {@link FeedRateError}): the caller sheds the
   * request, and the browser comes back by itself.
   */
  async join(stream: string, filters: readonly string[], session: Session): Promise<Feed> {
    const key = FeedRegistry.key(stream, filters);
    let feed = this.feeds.get(key);
    if (!feed) {
      this.admitNewFeed();
      // Outside the request that happens to start it: the feed's work (its consumer, its logs,
      // its batch spans) belongs to no one session's trace.
      feed = context.with(
        ROOT_CONTEXT,
        () => new Feed(key, stream, filters, this.opts, this.deps, this.host),
      );
      this.add(feed);
      const created = feed;
      created.ready.catch(() => this.forgetFeed(created));
    }
    const joined = feed;
    this.unlinger(joined);
    // Join before awaiting so that a concurrent last-leave does not linger-close it under us.
    joined.join(session);
    try {
      await joined.ready;
      // A window serves a session only after the stream was checked at most WINDOW_CHECK_MS
      // ago: what was purged or erased since must not come from memory.
      await this.monitor
        .fresh(stream, this.opts.windowCheckMs ?? 1_000)
        .catch(() => joined.distrustWindow());
    } catch (err) {
      feed.leave(session);
      throw err;
    }
    if (!feed.running) {
      feed.leave(session);
      throw new Error(`feed for ${stream} closed while starting`);
    }
    return feed;
  }

  leave(feed: Feed, session: Session): void {
    feed.leave(session);
    if (feed.sessions.size > 0 || this.feeds.get(feed.key) !== feed) return;
    if (this.opts.lingerMs === 0) {
      this.remove(feed);
      return;
    }
    // Started by whichever session left last; the feed's end belongs to no one's trace.
    const t = context.with(ROOT_CONTEXT, () =>
      setTimeout(() => {
        this.lingering.delete(feed);
        this.deps.metrics.feedsLingering.set(this.lingering.size);
        if (feed.sessions.size === 0) this.remove(feed);
      }, this.opts.lingerMs),
    );
    t.unref();
    this.lingering.set(feed, t);
    // Lingering feeds hold a consumer and a window each: past the bound, the one unused the
    // longest goes first (a Map iterates in insertion order).
    if (this.lingering.size > this.opts.maxLingering) this.evictOldestLingering();
    this.deps.metrics.feedsLingering.set(this.lingering.size);
  }

  async closeAll(): Promise<void> {
    this.closed = true;
    clearInterval(this.watchdogTimer);
    for (const t of this.lingering.values()) clearTimeout(t);
    this.lingering.clear();
    this.deps.metrics.feedsLingering.set(0);
    const feeds = [...this.feeds.values()];
    this.feeds.clear();
    this.byStream.clear();
    await Promise.all(feeds.map((f) => f.close()));
  }

  /**
   * Admits a new feed or throws. Full (MAX_FEEDS): the feed unused the longest makes room, if
   * any lingers; otherwise the request is refused. Then the creation rate (FEED_CREATE_RATE).
   */
  private admitNewFeed(): void {
    const { metrics } = this.deps;
    const max = this.opts.maxFeeds ?? Number.POSITIVE_INFINITY;
    const full = this.feeds.size >= max;
    if (full && this.lingering.size === 0) {
      metrics.feedRefusals.inc({ reason: "limit" });
      throw new FeedLimitError(max);
    }
    if (this.bucket && !this.bucket.take()) {
      metrics.feedRefusals.inc({ reason: "rate" });
      throw new FeedRateError(this.bucket.ratePerSecond);
    }
    if (full) this.evictOldestLingering();
    metrics.feedCreations.inc();
  }

  private evictOldestLingering(): void {
    const first = this.lingering.entries().next();
    if (first.done) return;
    const [oldest, timer] = first.value;
    clearTimeout(timer);
    this.lingering.delete(oldest);
    this.deps.metrics.feedsLingering.set(this.lingering.size);
    this.remove(oldest);
  }

  private add(feed: Feed): void {
    this.feeds.set(feed.key, feed);
    let set = this.byStream.get(feed.stream);
    if (!set) {
      set = new Set();
      this.byStream.set(feed.stream, set);
    }
    set.add(feed);
  }

  /** Takes a feed out of the registry (it closes, or already did, by itself). */
  private forgetFeed(feed: Feed): void {
    if (this.feeds.get(feed.key) === feed) this.feeds.delete(feed.key);
    const set = this.byStream.get(feed.stream);
    if (!set?.delete(feed) || set.size > 0) return;
    this.byStream.delete(feed.stream);
    this.monitor.forget(feed.stream);
  }

  private unlinger(feed: Feed): void {
    const t = this.lingering.get(feed);
    if (t) {
      clearTimeout(t);
      this.lingering.delete(feed);
      this.deps.metrics.feedsLingering.set(this.lingering.size);
    }
  }

  private remove(feed: Feed): void {
    this.forgetFeed(feed);
    void feed.close();
  }

  private ended(feed: Feed): void {
    this.unlinger(feed);
    this.forgetFeed(feed);
    this.onFeedEnded([...feed.sessions]);
  }

  private onSnapshot(stream: string, snapshot: StreamSnapshot, removed: Removed | undefined): void {
    this.deps.metrics.streamChecks.inc();
    for (const f of [...(this.byStream.get(stream) ?? [])]) f.applyStreamState(snapshot, removed);
  }

  /** Runs `fn` once fewer than RESTART_CONCURRENCY replacements run. */
  private async restartSlot<T>(fn: () => Promise<T>): Promise<T> {
    if (this.restartsRunning >= RESTART_CONCURRENCY)
      await new Promise<void>((resolve) => this.restartsWaiting.push(resolve));
    else this.restartsRunning++;
    try {
      return await fn();
    } finally {
      const next = this.restartsWaiting.shift();
      if (next)
        next(); // the slot passes straight on
      else this.restartsRunning--;
    }
  }

  /**
   * A reconnect replaces every feed's consumer at once, from the last sequence each one has:
   * the server may have lost them (a restart loses every ordered consumer, which lives in
   * memory), and nats.js's own recovery waits out 30 s backoffs. Stream states are checked
   * again too (a purge may have happened meanwhile).
   */
  private async followConnection(nc: NonNullable<FeedDeps["nc"]>): Promise<void> {
    for await (const s of nc.status()) {
      if (this.closed) return;
      if (s.type === "disconnect") {
        this.connected = false;
        for (const f of this.feeds.values()) f.unwatch();
      } else if (s.type === "reconnect") {
        this.connected = true;
        this.monitor.invalidate();
        this.deps.log.info(
          { feeds: this.feeds.size },
          "nats reconnected; replacing feed consumers",
        );
        for (const f of this.feeds.values()) f.restart("reconnect");
      }
    }
  }

  /**
   * The watchdog: every FEED_WATCHDOG_MS, one stream-info request per stream with feeds, and
   * each feed's look ({@link Feed.watchdog}). Skipped while NATS is disconnected.
   */
  private async tick(): Promise<void> {
    if (this.ticking || this.closed) return;
    if (!this.connected || this.deps.nc?.isClosed()) {
      for (const f of this.feeds.values()) f.unwatch();
      return;
    }
    this.ticking = true;
    try {
      const streams = [...this.byStream.keys()];
      const maxAge = (this.opts.watchdogMs ?? 6_000) / 4;
      const next = async (): Promise<void> => {
        for (let stream = streams.pop(); stream !== undefined; stream = streams.pop()) {
          let snapshot: StreamSnapshot;
          try {
            snapshot = await this.monitor.fresh(stream, maxAge);
          } catch (err) {
            // Gone: its feeds end, and their clients get a reset notice or a 404 on return.
            if (isStreamNotFound(err))
              for (const f of this.byStream.get(stream) ?? []) f.restart("deleted");
            continue;
          }
          if (!this.connected) return;
          for (const f of this.byStream.get(stream) ?? []) f.watchdog(snapshot);
        }
      };
      await Promise.all(Array.from({ length: WATCHDOG_CONCURRENCY }, next));
    } finally {
      this.ticking = false;
    }
  }
}
