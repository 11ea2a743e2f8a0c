import type { Session } from "../sse/session";
import { Feed, type FeedDeps, type FeedOptions } from "./feed";

/**
 * The pod's feeds by (stream, filter set). A feed lives while it has sessions, and lingers
 * `lingerMs` after the last one leaves so that reconnects (which usually land within seconds)
 * find its window still warm.
 */
export class FeedRegistry {
  private readonly feeds = new Map<string, Feed>();
  private readonly lingering = new Map<Feed, NodeJS.Timeout>();

  /**
   * @param opts.lingerMs how long an unused feed stays open, in milliseconds (FEED_LINGER_MS).
   * @param opts.maxLingering most unused feeds kept open at once (FEED_LINGER_MAX).
   * @param onFeedEnded called with the sessions of a feed whose stream went away.
   */
  constructor(
    private readonly opts: FeedOptions & { lingerMs: number; maxLingering: number },
    private readonly deps: FeedDeps,
    private readonly onFeedEnded: (sessions: Session[]) => void,
  ) {}

  static key(stream: string, filters: readonly string[]): string {
    return `${stream}\u0000${filters.join("\u0000")}`;
  }

  /** The running feed for (stream, filters), started if needed; the session joins it. */
  async join(stream: string, filters: readonly string[], session: Session): Promise<Feed> {
    const key = FeedRegistry.key(stream, filters);
    let feed = this.feeds.get(key);
    if (!feed) {
      feed = new Feed(key, stream, filters, this.opts, this.deps, (f) => this.ended(f));
      this.feeds.set(key, feed);
      const created = feed;
      created.ready.catch(() => {
        if (this.feeds.get(key) === created) this.feeds.delete(key);
      });
    }
    this.unlinger(feed);
    // Join before awaiting so that a concurrent last-leave does not linger-close it under us.
    feed.join(session);
    try {
      await feed.ready;
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
    const t = setTimeout(() => {
      this.lingering.delete(feed);
      if (feed.sessions.size === 0) this.remove(feed);
    }, this.opts.lingerMs);
    t.unref();
    this.lingering.set(feed, t);
    // Lingering feeds hold a consumer and a window each: past the bound, the one unused the
    // longest goes first (a Map iterates in insertion order).
    if (this.lingering.size > this.opts.maxLingering) {
      const [oldest, timer] = this.lingering.entries().next().value as [Feed, NodeJS.Timeout];
      clearTimeout(timer);
      this.lingering.delete(oldest);
      this.remove(oldest);
    }
  }

  async closeAll(): Promise<void> {
    for (const t of this.lingering.values()) clearTimeout(t);
    this.lingering.clear();
    const feeds = [...this.feeds.values()];
    this.feeds.clear();
    await Promise.all(feeds.map((f) => f.close()));
  }

  private unlinger(feed: Feed): void {
    const t = this.lingering.get(feed);
    if (t) {
      clearTimeout(t);
      this.lingering.delete(feed);
    }
  }

  private remove(feed: Feed): void {
    if (this.feeds.get(feed.key) === feed) this.feeds.delete(feed.key);
    void feed.close();
  }

  private ended(feed: Feed): void {
    this.unlinger(feed);
    if (this.feeds.get(feed.key) === feed) this.feeds.delete(feed.key);
    this.onFeedEnded([...feed.sessions]);
  }
}
