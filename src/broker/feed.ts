import {
  DeliverPolicy,
  type Consumer,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import type { Logger } from "../telemetry/logger";
import type { Metrics } from "../telemetry/metrics";
import type { Batch, Frame, Session } from "../sse/session";
import { frameOf } from "./frames";
import { cursorForLast } from "./lastN";
import type { StreamResolver } from "./streams";
import { RecentWindow, type WindowBudget } from "./window";

/** Settings a feed needs; see the README for each variable. */
export interface FeedOptions {
  /** Header whose value becomes the SSE `event:` (EVENT_TYPE_HEADER, default `SSE-Event`). */
  eventHeader: string;
  /** Frames kept for resume from memory, in messages (WINDOW_MESSAGES, default 10000). */
  windowMessages: number;
  /** Bytes kept for resume from memory (WINDOW_BYTES, default 8 MiB). */
  windowBytes: number;
  /** Shared by all feeds' windows (WINDOW_TOTAL_BYTES, default 256 MiB); default: unbounded. */
  windowBudget?: WindowBudget;
  /** Messages requested per pull from the live consumer, in messages. Default 512. */
  pullBatch?: number;
  /**
   * Quiet time before a feed writes what arrived, in ms (FEED_COALESCE_MS, whose default is 2).
   * Default here 0: write every event-loop tick.
   */
  coalesceMs?: number;
  /** Longest wait for the window's warm-up at start, in milliseconds. Default 5000. */
  warmUpTimeoutMs?: number;
}

export interface FeedDeps {
  js: JetStreamClient;
  jsm: JetStreamManager;
  resolver: StreamResolver;
  metrics: Metrics;
  log: Logger;
}

type State = "starting" | "running" | "closed";

/**
 * One live JetStream ordered consumer for one (stream, filter set) on this pod, shared by all
 * its sessions (invariant 2). Each message is framed once; what arrives within one tick is
 * concatenated once and the same buffer is written to every session (invariant 3).
 */
export class Feed {
  readonly sessions = new Set<Session>();
  readonly window: RecentWindow;
  private state: State = "starting";
  private messages: ConsumerMessages | undefined;
  private consumer: Consumer | undefined;
  private pending: Frame[] = [];
  private flushScheduled = false;
  /** A frame arrived since the last look (coalescing). */
  private arrived = false;
  private batchStart = 0;
  /** The stream's creation time when the feed started; see verify(). */
  private created = "";
  /** Set while a recreated consumer is checked; messages wait in `quarantine`. */
  private verifying = false;
  private quarantine: JsMsg[] = [];
  /** While true, messages only fill the window: no session is waiting for them yet. */
  private warming = true;
  private warmUntil = 0;
  private endWarmUp: () => void = () => {};
  /** Settles when the live consumer runs (or failed to start). */
  readonly ready: Promise<void>;

  constructor(
    readonly key: string,
    readonly stream: string,
    readonly filters: readonly string[],
    private readonly opts: FeedOptions,
    private readonly deps: FeedDeps,
    /** Called when the feed ends by itself (its stream went away). */
    private readonly onEnded: (feed: Feed) => void,
  ) {
    this.window = new RecentWindow(opts.windowMessages, opts.windowBytes, opts.windowBudget);
    this.ready = this.start();
  }

  get running(): boolean {
    return this.state === "running";
  }

  /** The highest sequence this feed has seen; everything after it will arrive live. */
  get lastSeq(): number {
    return this.window.last;
  }

  /**
   * Where a fresh ("new") session starts: after everything the feed has seen, and never before
   * the stream's end when the feed started (should a stalled warm-up still be catching up).
   */
  get newFrom(): number {
    return Math.max(this.window.last, this.warmUntil);
  }

  join(session: Session): void {
    this.sessions.add(session);
  }

  leave(session: Session): void {
    this.sessions.delete(session);
  }

  /** Stops the live consumer and removes it from NATS. Sessions are not touched. */
  async close(): Promise<void> {
    if (this.state === "closed") return;
    const wasRunning = this.state === "running";
    this.state = "closed";
    this.finishWarmUp(); // a start() waiting for its warm-up sees the close at once
    this.updateWindowMetrics(-this.window.size, -this.window.bytes);
    if (wasRunning) this.deps.metrics.feeds.dec();
    this.window.reset(this.window.last);
    await this.messages?.close().catch(() => undefined);
    // An ordered consumer would linger on the server until its inactivity threshold.
    await this.consumer?.delete().catch(() => undefined);
  }

  private async start(): Promise<void> {
    const { js, jsm, resolver, metrics, log } = this.deps;
    const state = await resolver.state(this.stream);
    this.created = state.created;
    // Begin at the last WINDOW_MESSAGES matching messages, so the window can serve resumes
    // from memory as soon as the feed is ready. Every matching message after the window's
    // floor then arrives through this one consumer, in order.
    const warm = this.opts.windowMessages > 0 && state.last >= Math.max(1, state.first);
    const from = warm
      ? (await cursorForLast(jsm, this.stream, this.filters, this.opts.windowMessages, state)) + 1
      : state.last + 1;
    this.window.reset(from - 1);
    const consumer = await js.consumers.get(this.stream, {
      filter_subjects: [...this.filters],
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: from,
    });
    this.consumer = consumer;
    if (this.state === "closed") {
      await consumer.delete().catch(() => undefined);
      return;
    }
    const backlog = (await consumer.info(true)).num_pending;
    const warmed = new Promise<void>((resolve) => {
      this.endWarmUp = resolve;
      if (backlog === 0 || (this.state as State) === "closed") {
        this.warming = false;
        resolve();
      }
    });
    this.warmUntil = state.last;
    this.messages = await consumer.consume({
      max_messages: this.opts.pullBatch ?? 512,
      callback: (m) => {
        // A throw here would stop nats.js's consumer silently; end the feed instead, so its
        // clients reconnect (and resume) rather than wait forever.
        try {
          this.onMessage(m);
        } catch (err) {
          this.deps.log.error({ err, stream: this.stream, seq: m.seq }, "feed failed on a message");
          void this.end();
        }
      },
    });
    if ((this.state as State) === "closed") {
      // close() ran while consume() was starting, before there was anything to close.
      await this.messages.close().catch(() => undefined);
      await consumer.delete().catch(() => undefined);
      return;
    }
    void this.watch(this.messages);
    // However the consumer stops (not by close()), the feed ends with it.
    void this.messages.closed().then(() => this.end());
    // A warm-up that stalls (NATS trouble) must not hold requests forever: the window then
    // simply starts smaller.
    const stall = setTimeout(() => this.finishWarmUp(), this.opts.warmUpTimeoutMs ?? 5_000);
    await warmed;
    clearTimeout(stall);
    if ((this.state as State) === "closed") return; // closed while warming up
    this.state = "running";
    metrics.feeds.inc();
    log.debug(
      { stream: this.stream, filters: this.filters, from, warmed: this.window.size },
      "feed started",
    );
  }

  private finishWarmUp(): void {
    if (!this.warming) return;
    this.warming = false;
    this.endWarmUp();
  }

  private async watch(messages: ConsumerMessages): Promise<void> {
    for await (const s of messages.status()) {
      if (s.type === "reset") this.verifying = true;
      if (s.type === "ordered_consumer_recreated") void this.verify();
      if (s.type === "stream_not_found" || s.type === "consumer_deleted") {
        // The stream was deleted (its consumers go with it), or someone deleted the feed's
        // consumer. nats.js would recreate it only after missed heartbeats, from the old
        // sequence: on a recreated stream, clients would silently miss its first messages.
        this.deps.log.warn(
          { stream: this.stream },
          `${s.type === "stream_not_found" ? "stream" : "consumer"} went away under a feed; ending its sessions`,
        );
        this.deps.resolver.forget(this.stream);
        await this.end();
        return;
      }
    }
  }

  /**
   * After nats.js recreated the ordered consumer (NATS restarted, heartbeats missed, or the
   * stream was deleted): if the stream is not the one the feed started on (deleted and created
   * again, its sequences starting over), the consumer would continue from the old sequence and
   * every client would silently miss the new stream's first messages. Messages wait in
   * quarantine until the stream is known to be the same; otherwise the feed ends, its clients
   * reconnect and get a reset notice.
   */
  private async verify(): Promise<void> {
    const state = await this.deps.resolver.state(this.stream).catch(() => undefined);
    if (this.state === "closed") return;
    if (!state || state.created !== this.created) {
      this.deps.log.warn(
        { stream: this.stream },
        "stream recreated under a feed; ending its sessions",
      );
      this.deps.resolver.forget(this.stream);
      this.quarantine = [];
      await this.end();
      return;
    }
    this.deps.log.info({ stream: this.stream, filters: this.filters }, "feed consumer recreated");
    this.verifying = false;
    const held = this.quarantine;
    this.quarantine = [];
    for (const m of held) this.onMessage(m);
  }

  /** Ends the feed by itself: its sessions are closed with a retry hint and come back. */
  private async end(): Promise<void> {
    if (this.state === "closed") return;
    const closing = this.close();
    this.onEnded(this); // out of the registry at once: no new session may join a dying feed
    await closing;
  }

  private onMessage(m: JsMsg): void {
    if (this.state === "closed") return;
    if (this.verifying) {
      this.quarantine.push(m);
      // Bounded: past the window's size the feed ends and its clients resume by replay.
      if (this.quarantine.length > Math.max(1_000, this.opts.windowMessages)) void this.end();
      return;
    }
    if (m.seq <= this.window.last) return;
    const frame = frameOf(m, this.opts.eventHeader);
    const size = this.window.size;
    const bytes = this.window.bytes;
    this.window.push(frame);
    this.updateWindowMetrics(this.window.size - size, this.window.bytes - bytes);
    this.deps.metrics.feedMessages.inc();
    if (this.warming) {
      if (m.seq >= this.warmUntil || m.info.pending === 0) this.finishWarmUp();
      return;
    }
    this.pending.push(frame);
    this.arrived = true;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      this.batchStart = performance.now();
      setImmediate(() => this.flushWhenQuiet());
    }
  }

  /**
   * Writes the pending frames once the NATS connection has been quiet for `coalesceMs` (at
   * most 10 times that after the first frame). A burst arrives over several network reads;
   * writing after each would cost every session a socket write per read. Waiting for the lull
   * makes it one write per session per burst: the bench measured the server's CPU per delivery
   * falling to that of a server that knows the burst size in advance.
   */
  private flushWhenQuiet(): void {
    const quiet = this.opts.coalesceMs ?? 0;
    if (this.arrived && quiet > 0 && performance.now() - this.batchStart < quiet * 10) {
      this.arrived = false;
      setTimeout(() => this.flushWhenQuiet(), quiet);
      return;
    }
    this.flush();
  }

  /** Writes this tick's frames to every session as one buffer (invariant 3). */
  private flush(): void {
    this.flushScheduled = false;
    const frames = this.pending;
    this.pending = [];
    if (frames.length === 0 || this.state === "closed") return;
    const buf =
      frames.length === 1 ? (frames[0] as Frame).buf : Buffer.concat(frames.map((f) => f.buf));
    const batch: Batch = {
      frames,
      buf,
      firstSeq: (frames[0] as Frame).seq,
      lastSeq: (frames[frames.length - 1] as Frame).seq,
    };
    let live = 0;
    for (const s of this.sessions) {
      if (!s.isReplaying) live++;
      s.deliverLive(batch);
    }
    if (live > 0) {
      this.deps.metrics.eventsSent.inc({ path: "live" }, frames.length * live);
      this.deps.metrics.bytesSent.inc(buf.length * live);
    }
  }

  private updateWindowMetrics(dMessages: number, dBytes: number): void {
    if (dMessages !== 0) this.deps.metrics.windowMessages.inc(dMessages);
    if (dBytes !== 0) this.deps.metrics.windowBytes.inc(dBytes);
  }
}
