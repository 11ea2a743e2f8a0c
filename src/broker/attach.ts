import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { StartPosition } from "../sse/cursor";
import { encodeComment, encodeNotice } from "../sse/encoder";
import type { Session } from "../sse/session";
import { jitter } from "../sse/sessionRegistry";
import type { Metrics } from "../telemetry/metrics";
import { ApiQueueFullError, type ApiCall } from "./apiLimiter";
import type { Feed } from "./feed";
import { cursorForLast } from "./lastN";
import { replay, type ReplayFrom } from "./replay";
import type { ReplayLimiter } from "./replayLimiter";
import type { StreamResolver, StreamState } from "./streams";

/** The SSE event types of the gateway's notices (documented in the README). */
export const GAP_EVENT = "gateway.gap";
export const RESET_EVENT = "gateway.reset";
/** Sent when a stream's token expires, just before the stream ends (see the README). */
export const TOKEN_EXPIRED_EVENT = "gateway.token_expired";

const API_QUEUE_FULL = encodeComment("api-queue-full");

export interface AttachDeps {
  js: JetStreamClient;
  jsm: JetStreamManager;
  resolver: StreamResolver;
  limiter: ReplayLimiter;
  metrics: Metrics;
  eventHeader: string;
  replayBatch: number;
  /** The client's address: its replays count against REPLAY_MAX_PER_CLIENT. */
  client?: string;
  /** `retry:` base for a session shed because JetStream calls are queued too deep (SHED_RETRY_MS). */
  shedRetryMs?: number;
  /** Told each step of the catch-up (the session's span records them as events). */
  onStep?: (step: CatchUpStep) => void;
}

/** A step of a session's catch-up, in the order they happen. */
export type CatchUpStep =
  | { type: "window"; after: number } // served from the feed's recent window, after `after`
  | { type: "replay-start"; after?: number; since?: string } // a replay consumer starts
  | { type: "replay-end"; delivered: number; stalled: boolean } // it stopped
  | { type: "gap"; cursor: number; firstAvailable: number; missed: number } // a gap notice
  | { type: "reset"; cursor: number; lastSequence: number } // a reset notice
  | { type: "live"; lastSeq: number }; // caught up: live frames flow from here

/**
 * Brings a session that has already joined its feed (so live frames are being held for it) up
 * to date from its start position, then lets it go live. The order matters for invariant 1:
 * joining first means nothing published during the catch-up can fall between the two.
 *
 * Catch-up comes from the feed's recent window when it covers the cursor (no JetStream call),
 * otherwise from a replay consumer. Rejects if the replay cannot run; the caller closes the
 * session with a retry hint and the client resumes from its last event.
 *
 * Every JetStream API call made here goes through the pod's API limiter; when its queue is
 * full the session is closed here ("api-queue-full") with a jittered `retry:`, the answer the
 * README documents for a busy pod, and the browser comes back by itself.
 */
export async function attach(
  session: Session,
  feed: Feed,
  start: StartPosition,
  deps: AttachDeps,
): Promise<void> {
  try {
    await catchUp(session, feed, start, deps);
  } catch (err) {
    if (!(err instanceof ApiQueueFullError)) throw err;
    // The shed answer, on a stream that has started: a comment naming the reason, `retry:`, end.
    session.control(API_QUEUE_FULL);
    session.close("api-queue-full", jitter(deps.shedRetryMs ?? 5_000));
  }
}

async function catchUp(
  session: Session,
  feed: Feed,
  start: StartPosition,
  deps: AttachDeps,
): Promise<void> {
  const api = deps.limiter.api.for(session);
  switch (start.kind) {
    case "new":
      session.lastSeq = feed.newFrom;
      goLive(session, deps);
      return;
    case "since":
      session.lastSeq = 0;
      await replayThenLive(session, feed, { time: start.time }, deps, api);
      return;
    case "from":
      await resume(session, feed, start.seq - 1, deps, api);
      return;
    case "after":
      await resume(session, feed, start.seq, deps, api);
      return;
    case "last": {
      let cursor = feed.window.cursorForLast(start.count);
      let state: StreamState | undefined;
      if (cursor === undefined) {
        state = await api(() => deps.resolver.state(feed.stream));
        cursor = await cursorForLast(deps.jsm, feed.stream, feed.filters, start.count, state, api);
      }
      // The cursor lies within `state`, so the stream need not be asked again.
      await resume(session, feed, cursor, deps, api, state);
      return;
    }
  }
}

async function resume(
  session: Session,
  feed: Feed,
  cursor: number,
  deps: AttachDeps,
  api: ApiCall,
  known?: StreamState,
): Promise<void> {
  // The client holds everything up to its cursor: a notice sent while JetStream is asked below
  // (the token's expiry) must name that position, never 0 (a resume from the stream's start).
  session.lastSeq ??= cursor;
  // Everything the feed sees after this point reaches the session (it joined the feed first).
  const seen = feed.lastSeq;
  if (await fromWindow(session, feed, cursor, deps)) return;
  const state = known ?? (await api(() => deps.resolver.state(feed.stream)));
  let after = cursor;
  if (cursor > state.last) {
    // The stream holds less than the client has seen: it was recreated or purged. Move the
    // client's Last-Event-ID back so later reconnects resume from what exists now. Not past
    // `seen`: a message published while we asked JetStream would be skipped, though the
    // client's stream was already open.
    after = Math.min(state.last, seen);
    deps.metrics.notices.inc({ type: "reset" });
    deps.onStep?.({ type: "reset", cursor, lastSequence: state.last });
    session.notice(
      encodeNotice(RESET_EVENT, after, { stream: feed.stream, cursor, lastSequence: state.last }),
      after,
    );
  } else if (cursor + 1 < state.first) {
    // Messages the client has not seen were removed (limits or age). Say so, then continue
    // with the oldest that remain.
    after = state.first - 1;
    deps.metrics.notices.inc({ type: "gap" });
    deps.onStep?.({
      type: "gap",
      cursor,
      firstAvailable: state.first,
      missed: state.first - cursor - 1,
    });
    session.notice(
      encodeNotice(GAP_EVENT, after, {
        stream: feed.stream,
        cursor,
        firstAvailable: state.first,
        missed: state.first - cursor - 1,
      }),
      after,
    );
  } else {
    session.lastSeq = cursor;
  }
  if (await fromWindow(session, feed, after, deps)) return;
  await replayThenLive(session, feed, { afterSeq: after }, deps, api);
}

/**
 * Serves the catch-up from the feed's window when it covers `cursor`; false otherwise.
 *
 * The window can hold far more than SESSION_MAX_BUFFER_BYTES, so its frames go out with the
 * same back-pressure as a replay (pausing while the socket is congested); written at once, a
 * large catch-up would exceed the bound and close the session as slow on every reconnect.
 * `after()` is a snapshot, and live frames are held until `goLive`, so waiting here leaves no
 * gap and no duplicate.
 */
async function fromWindow(
  session: Session,
  feed: Feed,
  cursor: number,
  deps: AttachDeps,
): Promise<boolean> {
  if (!feed.window.covers(cursor)) return false;
  session.lastSeq = Math.max(session.lastSeq ?? 0, cursor);
  deps.onStep?.({ type: "window", after: session.lastSeq });
  for (const frame of feed.window.after(cursor)) {
    if (session.closed) return true;
    session.deliverReplayed(frame);
    if (session.congested) await session.writable();
  }
  goLive(session, deps);
  return true;
}

function goLive(session: Session, deps: AttachDeps): void {
  session.goLive();
  if (!session.closed) deps.onStep?.({ type: "live", lastSeq: session.lastSeq ?? 0 });
}

/**
 * Catches up through a replay consumer, then goes live. The replay stops as soon as the feed's
 * window covers where the session is: the rest comes from memory, so JetStream sends each
 * session only what the window no longer holds. If the window moved on meanwhile (a burst
 * evicted it), another replay picks up from there; rounds are bounded.
 *
 * A replay whose client's socket has not drained for REPLAY_STALL_TIMEOUT_MS gives its slot
 * back (its consumer is deleted) and the catch-up pauses, holding no slot, until the socket
 * drains; then it queues again and continues after the last event delivered. The connection
 * stays open, so a client that was only slow for a while loses nothing and need not reconnect,
 * and one that never reads holds no slot; heartbeats and the SESSION_MAX_BUFFER_BYTES bound
 * (live events held for it) keep applying while it is paused.
 *
 * Once positioned (a sequence, not a time), each round but the last goes through a shared run
 * (sharedReplay.ts) that every session of the feed with a close cursor reads from; the last
 * round is a replay of the session's own to the stream's end, as above.
 */
async function replayThenLive(
  session: Session,
  feed: Feed,
  from: ReplayFrom,
  deps: AttachDeps,
  api: ApiCall,
): Promise<void> {
  let next = from;
  // After a replay from a time that found nothing, lastSeq (0) is no position: the window
  // must not be read from it (it would send what came before that time).
  let positioned = "afterSeq" in from;
  // Rounds are bounded by the constant. Pauses are not counted as rounds: each needs the
  // client to drain its socket first, and each following replay starts after what it was sent.
  for (let round = 1; ;) {
    // The last allowed round replays to the stream's end whatever the window does.
    const last = round === MAX_REPLAY_ROUNDS;
    const shared = deps.limiter.shared;
    if (positioned && !last && shared?.enabled) {
      // A shared run (sharedReplay.ts): the same catch-up, read once for every session of
      // the feed whose cursor is close. It never lets a session go live unless it joined
      // before the run's consumer existed; otherwise the window (or another round) follows.
      const after = session.lastSeq ?? 0;
      deps.onStep?.({ type: "replay-start", after });
      const r = await shared.catchUp(session, feed, after, deps.client);
      deps.onStep?.({ type: "replay-end", delivered: r.delivered, stalled: r.stalled });
      deps.metrics.replayedEvents.inc(r.delivered);
      deps.metrics.eventsSent.inc({ path: "replay" }, r.delivered);
      if (session.closed) return;
      if (r.stalled) await pause(session, deps.metrics);
      if (session.closed) return;
      if (await fromWindow(session, feed, session.lastSeq ?? 0, deps)) return;
      if (r.streamEnd) break;
      // Fell out of its run, or the window moved on: another round from where it is. A
      // stall is not a round (as below).
      if (!r.stalled) round++;
      next = { afterSeq: session.lastSeq ?? 0 };
      continue;
    }
    const release = await deps.limiter.acquire(session, deps.client);
    let reachedWindow = false;
    let stalled: boolean;
    try {
      if (session.closed) return;
      deps.onStep?.({
        type: "replay-start",
        ...("afterSeq" in next ? { after: next.afterSeq } : { since: next.time.toISOString() }),
      });
      const r = await replay(deps.js, session, {
        stream: feed.stream,
        filters: feed.filters,
        from: next,
        eventHeader: deps.eventHeader,
        batch: deps.replayBatch,
        until: last ? undefined : () => (reachedWindow = feed.window.covers(session.lastSeq ?? 0)),
        stallMs: deps.limiter.stallMs,
        api,
        onRead: () => deps.metrics.replayMessagesRead.inc(),
      });
      deps.onStep?.({ type: "replay-end", delivered: r.delivered, stalled: r.stalled });
      deps.metrics.replayedEvents.inc(r.delivered);
      deps.metrics.eventsSent.inc({ path: "replay" }, r.delivered);
      positioned ||= r.delivered > 0;
      stalled = r.stalled;
    } finally {
      release();
    }
    if (session.closed) return;
    if (stalled) await pause(session, deps.metrics);
    if (session.closed) return;
    if (positioned && (await fromWindow(session, feed, session.lastSeq ?? 0, deps))) return;
    if (!stalled) {
      // Replayed to the end of the stream: everything newer is held live for the session.
      if (!reachedWindow) break;
      round++;
    }
    // Unpositioned (a time replay that delivered nothing yet): start from that time again.
    if (positioned) next = { afterSeq: session.lastSeq ?? 0 };
  }
  goLive(session, deps);
}

/** Waits, holding no replay slot, until a stalled session's socket drains (or it closes). */
async function pause(session: Session, metrics: Metrics): Promise<void> {
  metrics.replaysStalled.inc();
  metrics.replaysPaused.inc();
  try {
    await session.writable();
  } finally {
    metrics.replaysPaused.dec();
  }
}

/** Replays one session may need before it goes live; each ends at the window or the stream's end. */
const MAX_REPLAY_ROUNDS = 4;
