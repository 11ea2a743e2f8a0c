import type { OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { chunkOf, frameChunk } from "./chunk";
import { encodeRetry } from "./encoder";

/** One message framed as SSE bytes, with its stream sequence. Shared by every session. */
export interface Frame {
  readonly seq: number;
  readonly buf: Buffer;
}

/** What a feed delivers in one tick: its frames, and all of them concatenated once. */
export interface Batch {
  readonly frames: readonly Frame[];
  readonly buf: Buffer;
  readonly firstSeq: number;
  readonly lastSeq: number;
}

/** Why a session ended; a metric label and a span attribute. */
export type CloseReason =
  | "client" // the client went away
  | "slow" // unsent bytes passed SESSION_MAX_BUFFER_BYTES
  | "drain" // the pod is shutting down
  | "feed-ended" // the stream went away under the feed
  | "replay-failed" // the replay consumer failed; the client resumes elsewhere
  | "replay-queue-full" // too many replays waiting
  | "api-queue-full" // too many JetStream API calls waiting (JETSTREAM_API_MAX_QUEUED)
  | "token-expired"; // the token's `exp` passed (a gateway.token_expired notice was sent)

/** Options for {@link Session}; one object is shared by all the sessions of a route. */
export interface SessionOptions {
  /**
   * Unsent bytes (socket buffer plus held live frames) past which the session is closed as
   * slow (SESSION_MAX_BUFFER_BYTES, default 1 MiB).
   */
  maxBufferBytes: number;
  /** Called once when the session closes, whatever the reason. */
  onClose?: (session: Session, reason: CloseReason) => void;
}

// The session of a response, for the one `close` listener all responses share: a closure per
// connection would cost memory for as long as the stream is open.
const SESSION = Symbol("session");
type Tagged = ServerResponse & { [SESSION]?: Session };
function onResponseClose(this: Tagged): void {
  this[SESSION]?.close("client");
}

/**
 * One SSE client. Writes go straight to the socket once the 200 is out (see {@link begin}; no
 * stream in between: a PassThrough per session costs ~13 kB and a copy), and the session
 * enforces invariant 1:
 * it delivers a message iff its sequence is greater than the last one it delivered.
 *
 * While a replay runs, live frames are held (bounded by bytes) and released afterwards, so the
 * handoff from replay to live has no gap and no duplicate.
 */
export class Session {
  /** The last stream sequence delivered; `undefined` until the start position is known. */
  lastSeq: number | undefined;
  /** Events delivered so far. */
  events = 0;
  closeReason: CloseReason | undefined;
  /** Whatever the session's owner keeps with it (the route's bookkeeping), read in `onClose`. */
  meta: unknown;

  private replaying = true;
  // Allocated on first use: most sessions never hold or coalesce anything.
  private held: Frame[] | undefined;
  private heldBytes = 0;
  private out: Buffer[] | undefined;
  private outBytes = 0;
  private flushScheduled = false;
  /** Run once at close. An array, not an AbortController: that costs ~1 kB per connection. */
  private closeHooks: Array<() => void> | undefined;
  /** Wakes a {@link writable} waiter when the socket has taken a write. */
  private wake: (() => void) | undefined;
  private onWritten: (() => void) | undefined;
  /**
   * The socket, once {@link begin} found the response owns it: writes then bypass Node's
   * response layer. Undefined before, and for a response that must stay on that layer.
   */
  private sock: Socket | undefined;
  /** Whether writes on {@link sock} need HTTP/1.1 chunk framing (false for HTTP/1.0). */
  private chunked = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly opts: SessionOptions,
  ) {
    (res as Tagged)[SESSION] = this;
    res.on("close", onResponseClose);
  }

  /**
   * Sends the 200 with `headers` and the `first` bytes of the stream at once, and from then on
   * writes the stream's bytes straight
   * to the socket, framed as HTTP/1.1 chunks by the gateway (a batch once for all sessions,
   * see ./chunk.ts): Node's response layer would frame, cork and schedule every write of
   * every session again. The response stays Node's for the end (`retry:`, the last chunk),
   * so the connection may be kept alive after a stream that ended cleanly.
   *
   * The response keeps the layer when it does not own the socket yet (a pipelined request
   * waits for the one before it) or has no body (HEAD).
   */
  begin(headers: OutgoingHttpHeaders, first: Buffer): void {
    const res = this.res;
    res.writeHead(200, headers);
    // Through the response layer: it goes out with the headers, in one packet.
    res.write(first);
    const sock = res.socket;
    if (!sock || res.req?.method === "HEAD") return;
    sock.setNoDelay(true);
    if ((sock as Socket & { _httpMessage?: unknown })._httpMessage !== res) return;
    this.sock = sock;
    this.chunked = res.chunkedEncoding;
  }

  /** Runs `fn` once when the session closes (at once if it already has); returns an undo. */
  whenClosed(fn: () => void): () => void {
    if (this.closed) {
      fn();
      return () => {};
    }
    (this.closeHooks ??= []).push(fn);
    return () => {
      const i = this.closeHooks?.indexOf(fn) ?? -1;
      if (i >= 0) this.closeHooks?.splice(i, 1);
    };
  }

  get closed(): boolean {
    return this.closeReason !== undefined;
  }

  /**
   * A live batch from the feed. In the common case (the session is live and behind the whole
   * batch) the feed's one concatenated buffer is written as is: no copy, one socket write.
   */
  deliverLive(batch: Batch): void {
    if (this.closed) return;
    if (this.replaying) {
      const held = (this.held ??= []);
      for (const f of batch.frames) {
        held.push(f);
        this.heldBytes += f.buf.length;
      }
      if (this.heldBytes > this.opts.maxBufferBytes) this.close("slow");
      return;
    }
    const last = this.lastSeq ?? 0;
    if (batch.firstSeq > last) {
      // Frames queued for this tick (the held or caught-up ones released by goLive) have
      // lower sequences: the batch must follow them, not overtake them with a direct write.
      if (this.outBytes > 0) this.send(batch.buf, batch.frames.length);
      else this.write(batch.buf, batch.frames.length, false);
      this.lastSeq = batch.lastSeq;
      return;
    }
    this.deliverFrames(batch.frames);
  }

  /** Frames from a replay or the feed's window, in sequence order; older ones are skipped. */
  deliverFrames(frames: Iterable<Frame>): void {
    const bufs: Buffer[] = [];
    let last = this.lastSeq ?? 0;
    for (const f of frames) {
      if (f.seq <= last) continue;
      bufs.push(f.buf);
      last = f.seq;
    }
    if (bufs.length === 0) return;
    this.lastSeq = last;
    if (bufs.length === 1) this.send(bufs[0] as Buffer, 1);
    else this.sendAll(bufs);
  }

  /** One replayed frame; coalesced with the others of this tick into one socket write. */
  deliverReplayed(frame: Frame): boolean {
    if (this.closed || frame.seq <= (this.lastSeq ?? 0)) return false;
    this.lastSeq = frame.seq;
    this.send(frame.buf, 1);
    return true;
  }

  /** A gateway notice that moves the cursor to `seq` (gap or reset). */
  notice(buf: Buffer, seq: number): void {
    this.lastSeq = seq;
    this.send(buf, 0);
  }

  /** Ends the replay phase: held live frames newer than the last delivered one follow. */
  goLive(): void {
    if (!this.replaying) return;
    this.replaying = false;
    const held = this.held;
    this.held = undefined;
    this.heldBytes = 0;
    if (held) this.deliverFrames(held);
  }

  get isReplaying(): boolean {
    return this.replaying;
  }

  /** Writes a control frame (retry, comment) at once. */
  control(buf: Buffer): void {
    this.write(buf, 0, false);
  }

  /**
   * Resolves when the socket has taken enough that the session is no longer congested (or the
   * session closed): back-pressure for replays and window catch-ups.
   *
   * Waiting for `drain` alone is not enough: Node's high-water mark (64 KiB) may be at or above
   * SESSION_MAX_BUFFER_BYTES, and writes made without leaving the microtask queue never reach
   * the socket at all, so a catch-up loop would pile up bytes until the session counted as slow.
   * Each write's callback (the socket took it) wakes the waiter to look again.
   *
   * @param timeoutMs give up after this long (a replay then gives its slot back); default never.
   * @returns false if the socket was still congested after `timeoutMs`, true otherwise
   *   (including when the session closed: the caller checks `closed`).
   */
  async writable(timeoutMs?: number): Promise<boolean> {
    this.flush();
    if (this.closed || !this.congested) return true;
    let timedOut = false;
    // One timer per wait, only on the catch-up path: live delivery never waits here.
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            this.wakeWaiter();
          }, timeoutMs);
    try {
      while (!this.closed && this.congested && !timedOut) {
        await new Promise<void>((resolve) => {
          this.wake = resolve; // by the next write callback, by close(), or by the timer
        });
      }
    } finally {
      clearTimeout(timer);
    }
    return this.closed || !this.congested;
  }

  /** True when a replay should wait for the socket before reading more. */
  get congested(): boolean {
    return (
      (this.sock ?? this.res).writableLength + this.outBytes >
      Math.min(65_536, this.opts.maxBufferBytes / 4)
    );
  }

  /**
   * Closes the session. A slow client's socket is destroyed at once (its unsent bytes are what
   * we must not keep); otherwise pending bytes are flushed, an optional `retry:` hint tells
   * the browser when to come back, and the response ends.
   */
  close(reason: CloseReason, retryMs?: number): void {
    if (this.closed) return;
    // Before its 200 the response belongs to the route, which still has to answer it (a bare
    // end would be a 200 without text/event-stream, which EventSource never retries).
    const started = this.res.headersSent && !this.res.destroyed;
    if (started && reason !== "slow") {
      this.flush(); // what is queued goes out before the end (this may find the client slow)
      if (this.closed) return;
    }
    this.closeReason = reason;
    this.held = undefined;
    this.heldBytes = 0;
    this.out = undefined;
    this.outBytes = 0;
    this.wakeWaiter(); // a writable() waiter must not wait for a socket that is going away
    const hooks = this.closeHooks ?? [];
    this.closeHooks = undefined;
    for (const hook of hooks) hook();
    if (started && reason === "slow") this.res.destroy();
    else if (started) {
      if (retryMs !== undefined) this.res.write(encodeRetry(retryMs));
      this.res.end();
    }
    this.opts.onClose?.(this, reason);
  }

  private send(buf: Buffer, events: number): void {
    if (this.closed) return;
    this.events += events;
    (this.out ??= []).push(buf);
    this.outBytes += buf.length;
    this.scheduleFlush();
  }

  /** Queues frames already in order, one event each (a catch-up's). */
  private sendAll(bufs: Buffer[]): void {
    if (this.closed) return;
    this.events += bufs.length;
    const out = (this.out ??= []);
    for (const b of bufs) {
      out.push(b);
      this.outBytes += b.length;
    }
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const out = this.out;
    if (!out || out.length === 0 || this.closed) return;
    const bytes = this.outBytes;
    this.out = undefined;
    this.outBytes = 0;
    if (bytes === 0) return; // an empty chunk would end the response
    if (out.length === 1) this.write(out[0] as Buffer, 0, true);
    // Framed while concatenated: one copy either way.
    else if (this.chunked) this.write(frameChunk(out, bytes), 0, true, true);
    else this.write(Buffer.concat(out, bytes), 0, true);
  }

  /**
   * Slow means the socket has not taken what it was given before: bytes handed over in this
   * very tick have not met the socket yet (Node writes them after the tick), so a burst larger
   * than the bound must not by itself evict a client that reads. A live batch is shared by all
   * sessions, so what a slow session holds alone stays within the bound.
   */
  private write(buf: Buffer, events: number, wakes: boolean, framed = false): void {
    if (this.closed || buf.length === 0) return; // an empty chunk would end the response
    const sink = this.sock ?? this.res;
    if (sink.writableLength > this.opts.maxBufferBytes) {
      this.close("slow");
      return;
    }
    this.events += events;
    const data = this.chunked && !framed ? chunkOf(buf) : buf;
    // Only a catch-up waits on the socket (writable()), so only its writes carry a callback.
    if (wakes && this.replaying) sink.write(data, (this.onWritten ??= () => this.wakeWaiter()));
    else sink.write(data);
  }

  private wakeWaiter(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
