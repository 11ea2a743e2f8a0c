import { JetStreamApiCodes, JetStreamApiError, type JetStreamManager } from "@nats-io/jetstream";

/** What the monitor knows of a stream, as JetStream answered one stream-info request. */
export interface StreamSnapshot {
  readonly first: number;
  readonly last: number;
  /** Messages and bytes stored (the average message size sizes a feed's warm-up). */
  readonly messages: number;
  readonly bytes: number;
  /** Sequences between first and last that were removed one by one (deletes, erasures). */
  readonly numDeleted: number;
  /** When the stream was created: a stream recreated under the same name differs. */
  readonly created: string;
  /** When the request that produced this snapshot was sent (monotonic clock, ms). */
  readonly at: number;
}

/**
 * What was removed from the middle of a stream since the previous snapshot: the sequences that
 * are gone, or `unknown` when there are too many to list (windows of the stream then start
 * over empty).
 */
export type Removed = { readonly deleted: ReadonlySet<number> } | { readonly unknown: true };

/** Called after every check, before anyone waiting for it continues. */
export type SnapshotListener = (
  stream: string,
  snapshot: StreamSnapshot,
  removed: Removed | undefined,
) => void;

/** True when `err` says the stream does not exist (any more). */
export function isStreamNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound;
}

/**
 * Beyond this many interior deletes, a check does not ask for their list (about 8 bytes each
 * in the answer): the stream's windows are emptied instead.
 */
export const MAX_DELETED_DETAILS = 10_000;

interface Entry {
  snapshot?: StreamSnapshot;
  /** The check in flight and when its request was sent. */
  running?: { at: number; done: Promise<StreamSnapshot> };
  /** A check queued behind the running one, for callers that need a newer answer. */
  queued?: Promise<StreamSnapshot>;
}

/**
 * Reads streams' states for the feeds: their first and last sequences, what was removed, whether
 * they were recreated. One request answers every caller that can use it (a reconnect storm costs
 * one request per stream, not one per client), and every answer goes to the listener, which keeps
 * the feeds' windows to what the stream still holds.
 *
 * A purge or an erasure leaves no trace in the messages themselves: the monitor notices them by
 * comparing snapshots (the first sequence moved, or the count of interior deletes changed), and
 * then asks JetStream which sequences are gone.
 */
export class StreamMonitor {
  private readonly entries = new Map<string, Entry>();

  /**
   * @param maxDeletedDetails most interior deletes listed per check (default
   * {@link MAX_DELETED_DETAILS}); beyond, `removed` is `unknown`.
   */
  constructor(
    private readonly jsm: JetStreamManager,
    private readonly listener: SnapshotListener,
    private readonly now: () => number = () => performance.now(),
    private readonly maxDeletedDetails = MAX_DELETED_DETAILS,
  ) {}

  /** The last snapshot, however old. */
  latest(stream: string): StreamSnapshot | undefined {
    return this.entries.get(stream)?.snapshot;
  }

  /**
   * A snapshot whose request was sent at most `maxAgeMs` ago (0: after this call), asking
   * JetStream only when none is. Rejects with the request's error (the stream is gone, NATS
   * trouble); the previous snapshot then stays, and the next check compares with it.
   */
  fresh(stream: string, maxAgeMs: number): Promise<StreamSnapshot> {
    const t = this.now();
    const entry = this.entry(stream);
    const snap = entry.snapshot;
    if (snap && t - snap.at <= maxAgeMs && maxAgeMs > 0) return Promise.resolve(snap);
    const running = entry.running;
    if (!running) return this.run(stream, entry);
    if (running.at >= t - maxAgeMs && maxAgeMs > 0) return running.done;
    // The running check began too early for this caller: share the one that follows it.
    entry.queued ??= running.done
      .catch(() => undefined)
      .then(() => {
        entry.queued = undefined;
        return this.run(stream, entry);
      });
    return entry.queued;
  }

  /** Forgets a stream's snapshot: the next fresh() asks JetStream (e.g. after a reconnect). */
  invalidate(stream?: string): void {
    if (stream === undefined) for (const e of this.entries.values()) e.snapshot = undefined;
    else {
      const e = this.entries.get(stream);
      if (e) e.snapshot = undefined;
    }
  }

  /** Drops everything about a stream no feed uses any more. */
  forget(stream: string): void {
    this.entries.delete(stream);
  }

  private entry(stream: string): Entry {
    let e = this.entries.get(stream);
    if (!e) {
      e = {};
      this.entries.set(stream, e);
    }
    return e;
  }

  private run(stream: string, entry: Entry): Promise<StreamSnapshot> {
    const at = this.now();
    const done = this.check(stream, entry, at).finally(() => {
      if (entry.running?.done === done) entry.running = undefined;
    });
    entry.running = { at, done };
    return done;
  }

  private async check(stream: string, entry: Entry, at: number): Promise<StreamSnapshot> {
    let info = await this.jsm.streams.info(stream);
    const prev = entry.snapshot;
    const changed =
      !prev ||
      prev.created !== info.created ||
      prev.first !== info.state.first_seq ||
      prev.numDeleted !== info.state.num_deleted;
    let removed: Removed | undefined;
    // Interior deletes only change together with their count or the first sequence (which
    // absorbs the gaps it passes); unchanged, nothing new was removed from the middle.
    if (changed && info.state.num_deleted > 0) {
      if (info.state.num_deleted <= this.maxDeletedDetails) {
        info = await this.jsm.streams.info(stream, { deleted_details: true });
        removed = { deleted: new Set(info.state.deleted ?? []) };
      } else removed = { unknown: true };
    }
    const snapshot: StreamSnapshot = {
      first: info.state.first_seq,
      last: info.state.last_seq,
      messages: info.state.messages,
      bytes: info.state.bytes,
      numDeleted: info.state.num_deleted,
      created: info.created,
      at,
    };
    // A slower, older check must not overwrite a newer one.
    if (!entry.snapshot || entry.snapshot.at <= at) entry.snapshot = snapshot;
    if (this.entries.get(stream) === entry) this.listener(stream, snapshot, removed);
    return snapshot;
  }
}
