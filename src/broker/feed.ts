import {
  DeliverPolicy,
  type Consumer,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "../telemetry/logger";
import type { Metrics } from "../telemetry/metrics";
import type { Batch, Frame, Session } from "../sse/session";
import { tracingActive } from "../telemetry/tracing";
import { BatchTrace } from "./batchTrace";
import { frameOf } from "./frames";
import type { StreamResolver } from "./streams";
import {
  isStreamNotFound,
  type Removed,
  type StreamMonitor,
  type StreamSnapshot,
} from "./streamMonitor";
import { warmUp, warmUpStart } from "./warmUp";
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
  /** Longest the window's warm-up may take at start, in milliseconds. Default 5000. */
  warmUpTimeoutMs?: number;
  /**
   * Most bytes a new feed reads from the stream to fill its window (FEED_WARMUP_BYTES, whose
   * default is 1 MiB); 0 reads nothing. Default here: `windowBytes`. Never more than that.
   */
  warmUpBytes?: number;
  /**
   * Idle heartbeat the server sends the live consumer while nothing arrives, in ms
   * (FEED_HEARTBEAT_MS, default 2000). Missed heartbeats make the feed replace its consumer.
   */
  heartbeatMs?: number;
  /**
   * Record a CONSUMER span per delivered batch, linked to the publishers' spans (TRACE_BATCHES,
   * default true); only while tracing is on. Default here false.
   */
  traceBatches?: boolean;
}

export interface FeedDeps {
  js: JetStreamClient;
  jsm: JetStreamManager;
  resolver: StreamResolver;
  metrics: Metrics;
  log: Logger;
  /** The connection's status events (reconnects) restart the feeds; optional for tests. */
  nc?: NatsConnection;
}

/** What a feed gets from its registry. */
export interface FeedHost {
  /** Stream states, shared by the feeds of a stream. */
  monitor: StreamMonitor;
  /** Runs a consumer replacement once a slot is free, so a reconnect does not start them all at once. */
  restartSlot<T>(fn: () => Promise<T>): Promise<T>;
  /** Called when the feed ends by itself (its stream went away, or it could not recover). */
  ended(feed: Feed): void;
}

/** What made a feed replace its live consumer (a label of `sse_feed_restarts_total`). */
export type RestartReason =
  | "reconnect" // the NATS connection came back: the server may have lost the consumer
  | "heartbeats" // the server's idle heartbeats stopped coming
  | "silent" // watchdog: neither a message nor a heartbeat for a whole period
  | "behind" // watchdog: the stream moved past the consumer, which did not follow
  | "deleted"; // the consumer was deleted, or its stream was not found for a moment

type State = "starting" | "running" | "closed";

/** Snapshots a feed's warm-up may use, in ms: a start needs the stream's rough size and end. */
const START_SNAPSHOT_MAX_AGE_MS = 1_000;
/** A feed whose consumer cannot be replaced for this long ends: its clients resume elsewhere. */
const RESTART_GIVE_UP_MS = 30_000;

/**
 * One live JetStream ordered consumer for one (stream, filter set) on this pod, shared by all
 * its sessions (invariant 2). Each message is framed once; what arrives within one tick is
 * concatenated once and the same buffer is written to every session (invariant 3).
 *
 * The feed owns its consumer's recovery rather than leaving it to nats.js, whose ordered
 * consumer waits out 30 s backoffs after a NATS restart: on a reconnect, missed heartbeats or
 * a watchdog alarm it deletes the consumer and creates a new one from the last sequence it has.
 */
export class Feed {
  readonly sessions = new Set<Session>();
  readonly window: RecentWindow;
  private state: State = "starting";
  private messages: ConsumerMessages | undefined;
  private consumer: Consumer | undefined;
  /** The live consumer's generation: what an older one still delivers is ignored. */
  private gen = 0;
  /** Messages and heartbeats of the current consumer (the watchdog compares them per period). */
  private activity = 0;
  /** The highest stream sequence the current consumer is known to have passed. */
  private scan = 0;
  /** The watchdog's previous look at this feed. */
  private lastLook: { gen: number; activity: number; scan: number; streamLast: number } | undefined;
  private restarting: Promise<void> | undefined;
  private pending: Frame[] = [];
  private flushScheduled = false;
  /** A frame arrived since the last look (coalescing). */
  private arrived = false;
  private batchStart = 0;
  /** The pending batch's trace (publisher links), while batches are traced. */
  private batchTrace: BatchTrace | undefined;
  /** The stream's creation time when the feed started: a recreated stream differs. */
  private created = "";
  /** Set while a consumer nats.js recreated is checked; messages wait in `quarantine`. */
  private verifying = false;
  private quarantine: JsMsg[] = [];
  private warmUntil = 0;
  private wakeClosed: () => void = () => {};
  private readonly closing = new Promise<void>((resolve) => (this.wakeClosed = resolve));
  /** Settles when the live consumer runs (or failed to start). */
  readonly ready: Promise<void>;

  constructor(
    readonly key: string,
    readonly stream: string,
    readonly filters: readonly string[],
    private readonly opts: FeedOptions,
    private readonly deps: FeedDeps,
    private readonly host: FeedHost,
  ) {
    this.window = new RecentWindow(opts.windowMessages, opts.windowBytes, opts.windowBudget);
    this.ready = this.start();
  }

  get running(): boolean {
    return this.state === "running";
  }

  /** True while the live consumer is being replaced (readiness reports it). */
  get stalled(): boolean {
    return this.restarting !== undefined;
  }

  /** The highest sequence this feed has seen; everything after it will arrive live. */
  get lastSeq(): number {
    return this.window.last;
  }

  /**
   * Where a fresh ("new") session starts: after everything the feed has seen, and never before
   * the stream's end when the feed started.
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
    this.wakeClosed(); // a start or a restart waiting on something sees the close at once
    this.trimWindow(undefined, () => this.window.reset(this.window.last));
    if (wasRunning) this.deps.metrics.feeds.dec();
    this.gen++;
    await this.messages?.close().catch(() => undefined);
    // An ordered consumer would linger on the server until its inactivity threshold.
    await this.consumer?.delete().catch(() => undefined);
  }

  /**
   * Replaces the live consumer with a new one that starts after the last sequence the feed
   * has, once a restart slot is free. Idempotent while one is under way.
   */
  restart(reason: RestartReason): void {
    if (this.state !== "running" || this.restarting) return;
    const { metrics, log } = this.deps;
    metrics.feedRestarts.inc({ reason });
    metrics.feedsStalled.inc();
    // A reconnect replaces every feed's consumer: one line for all of them is the registry's.
    const level = reason === "reconnect" ? "debug" : "warn";
    log[level](
      { stream: this.stream, filters: this.filters, reason },
      "replacing a feed's consumer",
    );
    this.restarting = this.host
      .restartSlot(() => this.replaceConsumer(reason))
      .catch((err: unknown) => log.warn({ err, stream: this.stream }, "feed restart failed"))
      .finally(() => {
        this.restarting = undefined;
        metrics.feedsStalled.dec();
      });
  }

  /**
   * The watchdog's look, once per FEED_WATCHDOG_MS while NATS is connected, with a recent
   * snapshot of the stream. The consumer is replaced when, since the previous look, it
   * delivered nothing and the server sent it no heartbeat (silent), or when the stream had
   * already moved past everything it is known to have passed and it did not move (behind):
   * a stalled consumer keeps clients waiting while connections stay open.
   */
  watchdog(snapshot: StreamSnapshot): void {
    if (this.state !== "running" || this.restarting) {
      this.lastLook = undefined;
      return;
    }
    const prev = this.lastLook;
    const look = { gen: this.gen, activity: this.activity, scan: this.scan };
    this.lastLook = { ...look, streamLast: snapshot.last };
    if (!prev || prev.gen !== look.gen) return;
    if (look.activity === prev.activity) this.restart("silent");
    else if (look.scan === prev.scan && look.scan < prev.streamLast) this.restart("behind");
  }

  /** Forgets the watchdog's previous look (NATS disconnected: silence proves nothing). */
  unwatch(): void {
    this.lastLook = undefined;
  }

  /**
   * Keeps the window to what the stream still holds; called with every snapshot of the
   * stream. A stream recreated under the feed ends it (its clients get a reset notice).
   */
  applyStreamState(snapshot: StreamSnapshot, removed: Removed | undefined): void {
    if (this.state === "closed") return;
    if (this.created !== "" && snapshot.created !== this.created) {
      this.deps.log.warn(
        { stream: this.stream },
        "stream recreated under a feed; ending its sessions",
      );
      this.deps.resolver.forget(this.stream);
      void this.end();
      return;
    }
    this.trimWindow("first", () => this.window.dropBefore(snapshot.first));
    if (removed && "deleted" in removed)
      this.trimWindow("deleted", () => this.window.remove(removed.deleted));
    else if (removed) this.trimWindow("unlisted", () => this.window.clear());
  }

  /** The stream's state could not be checked: the window must not serve what may be gone. */
  distrustWindow(): void {
    if (this.state !== "closed") this.trimWindow("unchecked", () => this.window.clear());
  }

  private async start(): Promise<void> {
    try {
      await this.begin();
    } catch (err) {
      await this.close(); // gives back what the warm-up put in the window
      throw err;
    }
  }

  private async begin(): Promise<void> {
    const snapshot = await this.host.monitor.fresh(this.stream, START_SNAPSHOT_MAX_AGE_MS);
    this.created = snapshot.created;
    this.warmUntil = snapshot.last;
    // Fill the window with the stream's recent messages before serving, so a resume storm onto
    // a fresh pod is answered from memory; at most FEED_WARMUP_BYTES are read for it.
    const budget = Math.min(this.opts.warmUpBytes ?? this.opts.windowBytes, this.opts.windowBytes);
    const from = this.opts.windowMessages > 0 ? warmUpStart(snapshot, budget) : snapshot.last + 1;
    this.window.reset(from - 1);
    if (from <= snapshot.last) await this.warm(from, snapshot.last, budget);
    else this.deps.metrics.warmUps.inc({ result: "skipped" });
    if (this.state === "closed") return;
    await this.openConsumer(this.window.last + 1);
    if ((this.state as State) === "closed") return;
    this.state = "running";
    this.deps.metrics.feeds.inc();
    this.deps.log.debug(
      { stream: this.stream, filters: this.filters, from, warmed: this.window.size },
      "feed started",
    );
  }

  private async warm(from: number, until: number, budget: number): Promise<void> {
    const { metrics, js } = this.deps;
    const result = await warmUp(js, {
      stream: this.stream,
      filters: this.filters,
      from,
      until,
      budgetBytes: budget,
      timeoutMs: this.opts.warmUpTimeoutMs ?? 5_000,
      onMessage: (m) => {
        if (this.state === "closed" || m.seq <= this.window.last) return;
        const frame = frameOf(m, this.opts.eventHeader);
        this.trimWindow(undefined, () => this.window.push(frame));
      },
      cancelled: () => this.state === "closed",
    });
    metrics.warmUpBytes.inc(result.bytes);
    const outcome = result.complete ? "complete" : (result.stopped ?? "cancelled");
    metrics.warmUps.inc({ result: outcome });
    // A window must hold every matching message up to its end: a partial one starts over
    // empty at the stream's end, and what came before is served by replays.
    if (!result.complete) {
      const level = result.stopped === "error" ? "warn" : "debug";
      this.deps.log[level]({ stream: this.stream, ...result }, "feed warm-up stopped short");
      this.trimWindow(undefined, () => this.window.reset(until));
    }
  }

  /** Creates the live consumer from `from` and starts consuming; a new generation. */
  private async openConsumer(from: number): Promise<void> {
    const gen = ++this.gen;
    const hb = this.opts.heartbeatMs ?? 2_000;
    const consumer = await this.deps.js.consumers.get(this.stream, {
      filter_subjects: [...this.filters],
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: from,
    });
    if (this.state === "closed" || gen !== this.gen) {
      await consumer.delete().catch(() => undefined);
      return;
    }
    this.consumer = consumer;
    this.activity = 0;
    this.scan = from - 1;
    this.lastLook = undefined;
    const messages = await consumer.consume({
      max_messages: this.opts.pullBatch ?? 512,
      // Short heartbeats, so a consumer the server lost is noticed within seconds; the server
      // wants a pull to last at least two of them.
      idle_heartbeat: hb,
      expires: Math.max(10_000, 2 * hb),
      callback: (m) => {
        if (gen !== this.gen) return; // a replaced consumer's last deliveries
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
    if ((this.state as State) === "closed" || gen !== this.gen) {
      // Closed or replaced while consume() was starting, before there was anything to close.
      await messages.close().catch(() => undefined);
      await consumer.delete().catch(() => undefined);
      return;
    }
    this.messages = messages;
    void this.watch(messages, gen);
    // However the consumer stops (not by close() or a replacement), the feed ends with it.
    void messages.closed().then(() => {
      if (gen === this.gen) void this.end();
    });
  }

  /** Retires the current consumer: nothing it still delivers is used; it is deleted. */
  private retire(): void {
    this.gen++;
    const { messages, consumer } = this;
    this.messages = undefined;
    this.consumer = undefined;
    this.verifying = false;
    this.quarantine = []; // re-read by the next consumer, which starts after window.last
    void messages?.close().catch(() => undefined);
    void consumer?.delete().catch(() => undefined);
  }

  /**
   * Replaces the live consumer, retrying (250 ms doubling to 2 s) until it runs: NATS may be
   * back before JetStream has recovered its streams. Before starting again, the stream must be
   * the same one (else the feed ends and its clients get a reset notice) and must still hold
   * everything after what the feed saw (else the feed ends and its clients get a gap notice).
   */
  private async replaceConsumer(reason: RestartReason): Promise<void> {
    const giveUpAt = performance.now() + RESTART_GIVE_UP_MS;
    for (let attempt = 0; this.state === "running"; attempt++) {
      this.retire();
      try {
        const snapshot = await this.host.monitor.fresh(this.stream, 0);
        if (this.state !== "running") return;
        if (snapshot.created !== this.created) {
          await this.end(); // recreated: its clients come back and get a reset notice
          return;
        }
        const seen = Math.max(this.scan, this.window.last);
        if (snapshot.first - 1 > seen) {
          this.deps.log.warn(
            { stream: this.stream, seen, first: snapshot.first },
            "the stream lost messages a feed had not received; ending its sessions",
          );
          await this.end();
          return;
        }
        await this.openConsumer(this.window.last + 1);
        this.deps.log.info(
          { stream: this.stream, filters: this.filters, reason, from: this.window.last + 1 },
          "feed consumer replaced",
        );
        return;
      } catch (err) {
        if (isStreamNotFound(err)) {
          this.deps.log.warn(
            { stream: this.stream },
            "stream gone under a feed; ending its sessions",
          );
          this.deps.resolver.forget(this.stream);
          await this.end();
          return;
        }
        if (performance.now() > giveUpAt) {
          this.deps.log.warn(
            { err, stream: this.stream },
            "feed consumer not replaceable; ending its sessions",
          );
          await this.end();
          return;
        }
        this.deps.log.debug(
          { err, stream: this.stream, attempt },
          "feed consumer not replaced yet",
        );
        await this.pause(Math.min(2_000, 250 * 2 ** attempt));
      }
    }
  }

  /** Waits `ms`, or less if the feed closes. */
  private async pause(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => (timer = setTimeout(resolve, ms))),
      this.closing,
    ]);
    clearTimeout(timer);
  }

  private async watch(messages: ConsumerMessages, gen: number): Promise<void> {
    for await (const s of messages.status()) {
      if (gen !== this.gen || this.state === "closed") return;
      switch (s.type) {
        case "heartbeat":
          // The server's consumer has passed everything up to lastStreamSequence (delivered,
          // or not matching): the watchdog's proof that a quiet feed is not a stuck one.
          this.activity++;
          if (!this.verifying && s.lastStreamSequence > this.scan) this.scan = s.lastStreamSequence;
          break;
        case "heartbeats_missed":
          this.restart("heartbeats");
          return;
        case "reset":
          this.verifying = true;
          break;
        case "ordered_consumer_recreated":
          void this.verify(gen);
          break;
        case "stream_not_found":
        case "consumer_deleted":
          // The stream was deleted (its consumers go with it), or someone deleted the feed's
          // consumer. nats.js would recreate it only after missed heartbeats, from the old
          // sequence: on a recreated stream, clients would silently miss its first messages.
          // A replacement checks the stream first and ends the feed if it is gone or new.
          this.restart("deleted");
          return;
        default:
          break;
      }
    }
  }

  /**
   * After nats.js recreated the ordered consumer by itself (it saw a gap in delivery): if the
   * stream is not the one the feed started on (deleted and created again, its sequences
   * starting over), the consumer would continue from the old sequence and every client would
   * silently miss the new stream's first messages. Messages wait in quarantine until the
   * stream is known to be the same; otherwise the feed ends and its clients get a reset notice.
   */
  private async verify(gen: number): Promise<void> {
    const snapshot = await this.host.monitor.fresh(this.stream, 0).catch(() => undefined);
    if (this.state === "closed" || gen !== this.gen) return;
    if (!snapshot || snapshot.created !== this.created) {
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
    this.host.ended(this); // out of the registry at once: no new session may join a dying feed
    await closing;
  }

  private onMessage(m: JsMsg): void {
    if (this.state === "closed") return;
    this.activity++;
    if (this.verifying) {
      this.quarantine.push(m);
      // Bounded: past the window's size the feed ends and its clients resume by replay.
      if (this.quarantine.length > Math.max(1_000, this.opts.windowMessages)) void this.end();
      return;
    }
    if (m.seq > this.scan) this.scan = m.seq;
    if (m.seq <= this.window.last) return;
    const frame = frameOf(m, this.opts.eventHeader);
    const size = this.window.size;
    const bytes = this.window.bytes;
    this.window.push(frame);
    this.updateWindowMetrics(this.window.size - size, this.window.bytes - bytes);
    this.deps.metrics.feedMessages.inc();
    if (this.opts.traceBatches && tracingActive()) (this.batchTrace ??= new BatchTrace()).note(m);
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
    // A lingering feed (no session) delivered to no one: nothing to trace.
    if (this.batchTrace && this.opts.traceBatches && tracingActive() && this.sessions.size > 0)
      this.batchTrace.record({
        stream: this.stream,
        filters: this.filters,
        firstSeq: batch.firstSeq,
        lastSeq: batch.lastSeq,
        messages: frames.length,
        bytes: buf.length,
        sessions: live,
        arrivedAt: this.batchStart,
      });
    else this.batchTrace?.discard();
  }

  /**
   * Runs a change of the window and accounts for it: the window gauges, and frames the stream
   * no longer holds under `reason` (sse_window_trimmed_total).
   */
  private trimWindow(reason: string | undefined, change: () => unknown): void {
    const size = this.window.size;
    const bytes = this.window.bytes;
    change();
    const dMessages = this.window.size - size;
    this.updateWindowMetrics(dMessages, this.window.bytes - bytes);
    if (reason !== undefined && dMessages < 0)
      this.deps.metrics.windowTrimmed.inc({ reason }, -dMessages);
  }

  private updateWindowMetrics(dMessages: number, dBytes: number): void {
    if (dMessages !== 0) this.deps.metrics.windowMessages.inc(dMessages);
    if (dBytes !== 0) this.deps.metrics.windowBytes.inc(dBytes);
  }
}
