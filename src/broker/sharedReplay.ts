import { DeliverPolicy, type ConsumerMessages, type JetStreamClient } from "@nats-io/jetstream";
import type { Session } from "../sse/session";
import type { ApiCall } from "./apiLimiter";
import type { Feed } from "./feed";
import { frameOf } from "./frames";
import type { Closable } from "./limiter";
import { ReplayRing, RingBudget, evictable, pickRun, type RunView } from "./replayRing";
import type { ReplayLimiter } from "./replayLimiter";

/** How often an idle run checks whether its consumer still has anything pending, in ms. */
const RUN_IDLE_CHECK_MS = 2_500;
/** A new run waits this long for sessions with older cursors to join before it reads, in ms. */
const RUN_GATHER_MS = 10;
/**
 * A run whose ring is full waits at most this long for its slowest member to take the oldest
 * frame; then that member falls out (it continues on a replay of its own), so one slow client
 * never holds the others back for longer than this, in ms.
 */
const RUN_LAG_MS = 1_000;
/** Frames a member takes from the ring before it looks at its socket again. */
const MEMBER_CHUNK = 512;

/** Settings of the pod's shared replays. */
export interface SharedReplayOptions {
  /** Header whose value becomes the SSE `event:` (EVENT_TYPE_HEADER). */
  eventHeader: string;
  /** Messages requested per pull (REPLAY_BATCH). A run's ring holds at most 16 pulls' worth. */
  batch: number;
  /**
   * Bytes all rings hold together (REPLAY_SHARED_BUFFER_BYTES); one run holds at most a
   * sixteenth of it. 0 turns sharing off: every replay reads for one session alone.
   */
  bufferBytes: number;
  /** Called for each message JetStream sends a run's consumer (sse_replay_messages_read_total). */
  onRead?: () => void;
  /** Reports the bytes all rings hold after every change (sse_replay_shared_bytes). */
  onBytes?: (bytes: number) => void;
  /**
   * Counts a session's replay: it joined a run, started one, or fell out of one's ring (it
   * continues on another) (sse_replay_shared_sessions_total).
   */
  onSession?: (how: "joined" | "started" | "fell-out") => void;
}

/** How a session's part in a shared run ended. */
export interface SharedResult {
  /** Events delivered from the run. */
  delivered: number;
  /** The client's socket had not drained for REPLAY_STALL_TIMEOUT_MS: the session left the run. */
  stalled: boolean;
  /**
   * The run read to the stream's end and the session joined before its consumer was created,
   * so everything newer reaches the session live (invariant 1): it may go live now. False
   * after any other end (the run met the window, the session fell out): the caller continues
   * from the window or with another replay, after `session.lastSeq`.
   */
  streamEnd: boolean;
}

interface Member {
  /** Joined before the run's consumer was created (see {@link SharedResult.streamEnd}). */
  readonly early: boolean;
  /** Fell out of the ring: the run needed room and this member had not taken the oldest frame. */
  dropped: boolean;
}

/**
 * Replays shared among the sessions of a feed whose cursors are close (issue 10, part 5).
 *
 * Per feed (stream and filter set), "runs": a run is one ordered consumer reading forward from a
 * start sequence into a bounded ring of the frames it read. A session that needs a replay from
 * cursor c joins a run whose ring still holds what follows c (it takes the ring's frames, then
 * follows the run), or a run still waiting for its slot (whose start moves down to the lowest
 * cursor), else starts a run. A run paces its reads to its slowest member within its ring, drops
 * members that fall out (they continue on a replay of their own), and ends when it meets the
 * feed's window or has no members left. So a reconnect storm costs JetStream one read of each
 * stretch of the stream per run, not one per client.
 *
 * Bounds (invariants 2 and 6): a run holds one replay slot (REPLAY_MAX_CONCURRENT), counted
 * against the client address of the session that started it (REPLAY_MAX_PER_CLIENT); joined
 * sessions hold none. Rings hold at most REPLAY_SHARED_BUFFER_BYTES together.
 */
export class SharedReplays {
  readonly budget: RingBudget;
  private readonly runs = new Map<Feed, Set<ReplayRun>>();

  constructor(
    private readonly js: JetStreamClient,
    private readonly limiter: ReplayLimiter,
    readonly opts: SharedReplayOptions,
  ) {
    this.budget = new RingBudget(opts.bufferBytes);
  }

  /** False when REPLAY_SHARED_BUFFER_BYTES is 0: replays are not shared. */
  get enabled(): boolean {
    return this.opts.bufferBytes > 0;
  }

  /** Runs open now (reading, waiting for a slot, or draining their ring), for tests. */
  get size(): number {
    let n = 0;
    for (const set of this.runs.values()) n += set.size;
    return n;
  }

  /**
   * Catches `session` up from `cursor` (its `lastSeq`) through a shared run, until the run meets
   * the feed's window, reads to the stream's end, or the session falls out or stalls. The
   * session has joined its feed already. Rejects when the run fails (as a replay would).
   * @param client the client address a new run's slot counts against.
   */
  catchUp(session: Session, feed: Feed, cursor: number, client?: string): Promise<SharedResult> {
    let set = this.runs.get(feed);
    if (!set) this.runs.set(feed, (set = new Set()));
    let run = pickRun(set, cursor, this.distance);
    // A run its last member just left is winding down (its slot wait or consumer is being
    // cancelled): joining it would only fail.
    if (run?.abandoned) run = undefined;
    if (run) this.opts.onSession?.("joined");
    else {
      run = new ReplayRun(this, feed, cursor, set);
      set.add(run);
      this.opts.onSession?.("started");
      void run.go(client);
    }
    return run.follow(session, cursor);
  }

  /** A run reads at most this many frames ahead of a waiting member's cursor. */
  get distance(): number {
    return this.ringMessages;
  }

  get ringMessages(): number {
    return 16 * this.opts.batch;
  }

  get ringBytes(): number {
    return Math.max(65_536, Math.floor(this.opts.bufferBytes / 16));
  }

  /** @internal */
  get deps(): { js: JetStreamClient; limiter: ReplayLimiter } {
    return { js: this.js, limiter: this.limiter };
  }

  /** @internal a run ended and its last member left. */
  forget(feed: Feed, set: Set<ReplayRun>, run: ReplayRun): void {
    set.delete(run);
    if (set.size === 0 && this.runs.get(feed) === set) this.runs.delete(feed);
    this.report();
  }

  /** @internal */
  report(): void {
    this.opts.onBytes?.(this.budget.used);
  }
}

/** One consumer read shared by the sessions that joined it; see {@link SharedReplays}. */
class ReplayRun implements RunView, Closable {
  state: "pending" | "reading" | "done" | "ended" = "pending";
  private start: number;
  private ring: ReplayRing | undefined;
  private readonly members = new Map<Session, Member>();
  private reason: "window" | "end" | undefined;
  private error: unknown;
  private wake: () => void = () => {};
  private changed: Promise<void> = new Promise((r) => (this.wake = r));
  private notifyScheduled = false;
  private onProgress: (() => void) | undefined;
  private closeHooks: Array<() => void> = [];
  private messages: ConsumerMessages | undefined;
  /** Its last member left while it waited or read: it is being cancelled, not joinable. */
  abandoned = false;
  /** Since when a member has held a full ring back from its older half (see makeRoom). */
  private lagSince: number | undefined;

  constructor(
    private readonly owner: SharedReplays,
    private readonly feed: Feed,
    start: number,
    private readonly set: Set<ReplayRun>,
  ) {
    this.start = start;
  }

  get floor(): number {
    return this.ring?.floor ?? this.start;
  }

  get last(): number {
    return this.ring?.last ?? this.start;
  }

  /** Closed, for the limiters' queues, when no member is left. */
  whenClosed(fn: () => void): () => void {
    if (this.members.size === 0 && this.state !== "pending") {
      fn();
      return () => {};
    }
    this.closeHooks.push(fn);
    return () => {
      const i = this.closeHooks.indexOf(fn);
      if (i >= 0) this.closeHooks.splice(i, 1);
    };
  }

  /** Takes a replay slot, gathers joiners for a moment, reads, and ends. Never rejects. */
  async go(client: string | undefined): Promise<void> {
    const { limiter } = this.owner.deps;
    try {
      const release = await limiter.acquire(this, client);
      try {
        if (this.members.size === 0) return;
        await new Promise((r) => setTimeout(r, RUN_GATHER_MS));
        if (this.members.size === 0) return;
        this.state = "reading";
        this.ring = new ReplayRing(this.start, this.owner.budget);
        await this.read(limiter.api.for(this));
      } finally {
        release();
      }
    } catch (err) {
      this.error = err;
    } finally {
      // Done (met the window or the stream's end): its ring still serves members and joiners
      // until the last member leaves. Ended (failed or stopped): nothing more to take from it.
      this.state = this.error === undefined && this.reason !== undefined ? "done" : "ended";
      this.fire(); // the limiters' waits for this run are over
      this.notify(true);
      this.maybeForget();
    }
  }

  private async read(api: ApiCall): Promise<void> {
    const { js } = this.owner.deps;
    const ring = this.ring as ReplayRing;
    const consumer = await api(() =>
      js.consumers.get(this.feed.stream, {
        filter_subjects: [...this.feed.filters],
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: this.start + 1,
        // If this pod dies mid-replay, the server removes the consumer on its own.
        inactive_threshold: 30_000,
      }),
    );
    try {
      const info = await consumer.info(true); // what the create answered: no API call
      if (info.num_pending === 0) {
        this.reason = "end";
        return;
      }
      if (this.members.size === 0) return;
      const messages = await consumer.consume({ max_messages: this.owner.opts.batch });
      this.messages = messages;
      // As in replay.ts: if the stream's limits remove the last pending messages before they
      // are sent, the message reporting nothing pending never comes; ask when idle a while.
      let idle = 0;
      let pacing = false;
      const watchdog = setInterval(() => {
        if (pacing || ++idle < 2) return;
        api(() => consumer.info())
          .then((ci) => {
            if (ci.num_pending === 0 && ci.delivered.stream_seq <= ring.last && idle >= 2) {
              this.reason ??= "end";
              void messages.close();
            }
          })
          .catch(() => undefined);
      }, RUN_IDLE_CHECK_MS);
      try {
        for await (const m of messages) {
          idle = 0;
          this.owner.opts.onRead?.();
          if (this.members.size === 0) break;
          const frame = frameOf(m, this.owner.opts.eventHeader);
          pacing = true;
          const room = await this.makeRoom(frame.buf.length);
          pacing = false;
          if (!room) break;
          ring.push(frame);
          this.owner.report();
          this.notify();
          // The window first: members continue from memory, whatever is pending.
          if (this.feed.window.covers(frame.seq)) {
            this.reason = "window";
            break;
          }
          if (m.info.pending === 0) {
            this.reason = "end";
            break;
          }
        }
      } finally {
        clearInterval(watchdog);
        this.messages = undefined;
        await messages.close().catch(() => undefined);
      }
    } finally {
      await api(() => consumer.delete(), { cleanup: true }).catch(() => undefined);
    }
  }

  /**
   * Pacing: before a frame of `len` bytes goes in, the ring must be within its bounds (count,
   * bytes, and the pod's budget). Frames every member has taken go first. A member in the older
   * half of a full ring holds the run back: once that has lasted RUN_LAG_MS in all (taking a
   * frame now and then does not reset it, only catching up to the newer half does), the members
   * still in the older half fall out, so a slow client sets the run's pace for a second at most.
   * False when no member is left.
   */
  private async makeRoom(len: number): Promise<boolean> {
    const ring = this.ring as ReplayRing;
    const { budget } = this.owner;
    while (
      ring.size > 0 &&
      (ring.size >= this.owner.ringMessages ||
        ring.bytes + len > this.owner.ringBytes ||
        budget.used + len > budget.max)
    ) {
      if (this.members.size === 0) return false;
      const slowest = this.slowest();
      // The newest frame of the older half (the ring is not empty here).
      const mid = (ring.at(Math.ceil(ring.size / 2) - 1) as { seq: number }).seq;
      if (slowest >= mid) this.lagSince = undefined;
      else this.lagSince ??= Date.now();
      if (this.lagSince !== undefined && Date.now() - this.lagSince >= RUN_LAG_MS) {
        // In the older half for RUN_LAG_MS: they fall out, and continue on replays of their own.
        this.dropBehind(mid);
        continue;
      }
      // Room for a quarter of the ring at once: the scan over members is not made per frame.
      const n = evictable(ring, Math.floor((ring.size * 3) / 4), slowest);
      if (n > 0) {
        for (let i = 0; i < n; i++) ring.shift();
        this.owner.report();
        continue;
      }
      // The slowest member still needs the oldest frame: wait for it to take frames or leave.
      const since = (this.lagSince ??= Date.now());
      await this.progress(Math.max(1, RUN_LAG_MS - (Date.now() - since)));
    }
    return this.members.size > 0;
  }

  /** Members that have not taken the frame `seq` yet fall out of the run. */
  private dropBehind(seq: number): void {
    for (const [session, member] of this.members) {
      if ((session.lastSeq ?? 0) < seq) {
        member.dropped = true;
        this.members.delete(session);
        this.owner.opts.onSession?.("fell-out");
      }
    }
    this.notify(true);
    this.lagSince = undefined;
  }

  /** The lowest position among members. */
  private slowest(): number {
    let min = Number.MAX_SAFE_INTEGER;
    for (const s of this.members.keys()) min = Math.min(min, s.lastSeq ?? 0);
    return min;
  }

  /** Waits until a member has taken frames or left, at most `ms`. */
  private async progress(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.onProgress = resolve;
      timer = setTimeout(resolve, ms);
    });
    clearTimeout(timer);
    this.onProgress = undefined;
  }

  private progressed(): void {
    const p = this.onProgress;
    this.onProgress = undefined;
    p?.();
    // A done run reads nothing more, so no push makes room in it: while the pod's rings are
    // over their budget it gives up what all its members have taken (joiners lose that much).
    const ring = this.ring;
    if (this.state === "done" && ring && this.owner.budget.used > this.owner.budget.max) {
      const n = evictable(ring, 0, this.slowest());
      for (let i = 0; i < n; i++) ring.shift();
      if (n > 0) this.owner.report();
    }
  }

  /** Wakes waiting members once per tick (or at once), so a burst of frames is one wake-up. */
  private notify(now = false): void {
    const fire = () => {
      this.notifyScheduled = false;
      const wake = this.wake;
      this.changed = new Promise((r) => (this.wake = r));
      wake();
    };
    if (now) return fire();
    if (this.notifyScheduled) return;
    this.notifyScheduled = true;
    setImmediate(fire);
  }

  /**
   * The member's side: takes the frames after its position from the ring, with the socket's
   * back-pressure, and waits for more until the run ends or the member falls out or stalls.
   */
  async follow(session: Session, cursor: number): Promise<SharedResult> {
    if (this.state === "pending") this.start = Math.min(this.start, cursor);
    const member: Member = { early: this.state === "pending", dropped: false };
    this.members.set(session, member);
    const unhook = session.whenClosed(() => this.notify(true));
    const { stallMs } = this.owner.deps.limiter;
    let delivered = 0;
    try {
      for (;;) {
        if (session.closed || member.dropped)
          return { delivered, stalled: false, streamEnd: false };
        const ring = this.ring;
        const pos = session.lastSeq ?? 0;
        if (ring && this.error === undefined) {
          if (pos < ring.floor) return { delivered, stalled: false, streamEnd: false };
          const frames = ring.after(pos, MEMBER_CHUNK);
          if (frames.length > 0) {
            for (const f of frames) {
              if (session.deliverReplayed(f)) delivered++;
              if (session.congested) break;
            }
            this.progressed();
            if (session.congested && !(await session.writable(stallMs))) {
              return { delivered, stalled: true, streamEnd: false };
            }
            this.progressed();
            continue;
          }
        }
        if (this.state === "done" || this.state === "ended") {
          if (this.error !== undefined) throw this.error;
          // Past its end the ring holds nothing this member has not taken.
          return {
            delivered,
            stalled: false,
            streamEnd: this.reason === "end" && member.early && pos >= this.last,
          };
        }
        await this.changed;
      }
    } finally {
      unhook();
      this.leave(session);
    }
  }

  private leave(session: Session): void {
    if (!this.members.delete(session)) return;
    this.progressed();
    if (this.members.size > 0) return;
    if (this.state === "pending" || this.state === "reading") this.abandoned = true;
    if (this.state === "reading") void this.messages?.close().catch(() => undefined);
    if (this.state === "pending" || this.state === "reading") this.fire();
    this.maybeForget();
  }

  private fire(): void {
    const hooks = this.closeHooks;
    this.closeHooks = [];
    if (this.members.size === 0 || this.state === "done" || this.state === "ended")
      for (const h of hooks) h();
    else this.closeHooks = hooks;
  }

  /** An ended run whose members have all left gives its frames back and is forgotten. */
  private maybeForget(): void {
    if (this.members.size > 0 || (this.state !== "done" && this.state !== "ended")) return;
    this.ring?.clear();
    this.owner.forget(this.feed, this.set, this);
  }
}
