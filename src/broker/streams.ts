import type { JetStreamManager } from "@nats-io/jetstream";
import { subjectIsSubset } from "./subjects";

/** No stream captures the subject: the HTTP layer answers 404. */
export class StreamNotFoundError extends Error {
  override readonly name = "StreamNotFoundError";
  constructor(readonly subject: string) {
    super(`no stream captures subject "${subject}"`);
  }
}

/** The request cannot be served by one stream: the HTTP layer answers 400. */
export class StreamMismatchError extends Error {
  override readonly name = "StreamMismatchError";
}

/** The subject lives in a stream the gateway never serves (KV or other system streams): 403. */
export class StreamForbiddenError extends Error {
  override readonly name = "StreamForbiddenError";
}

/** First and last sequence of a stream, read fresh from JetStream. */
export interface StreamState {
  first: number;
  last: number;
  /** When the stream was created (ISO time): a stream recreated under the same name differs. */
  created: string;
}

type Lookup = { at: number; stream: string; subjects: string[] } | { at: number; error: Error };

// Lookups are cached per filter so a reconnect storm costs JetStream one request per subject,
// not one per client. Failures are cached briefly: long enough to blunt a flood of bad
// requests, short enough that a stream created a moment later is found.
const NEGATIVE_TTL_MS = 1_000;
const MAX_ENTRIES = 10_000;

/** Finds, through JetStream, the one stream that captures a set of filters; caches answers. */
export class StreamResolver {
  private readonly cache = new Map<string, Lookup>();
  private readonly inflight = new Map<string, Promise<string>>();

  /**
   * @param ttlMs how long a found stream is remembered, in milliseconds (STREAM_CACHE_TTL_MS).
   * @param allowKv whether `$KV.` streams may be served (ALLOW_KV).
   * @param limit runs each JetStream lookup (a cache miss); the gateway passes its API limiter,
   *   so subjects never seen before cannot turn into a flood of API calls. Default: run at once.
   */
  constructor(
    private readonly jsm: JetStreamManager,
    private readonly ttlMs: number,
    private readonly allowKv: boolean,
    private readonly now: () => number = Date.now,
    private readonly limit: <T>(call: () => Promise<T>) => Promise<T> = (call) => call(),
  ) {}

  /** The stream capturing every filter; throws one of this module's errors otherwise. */
  async resolve(filters: readonly string[]): Promise<string> {
    const found = await Promise.all(filters.map((f) => this.lookup(f)));
    const names = [...new Set(found)];
    if (names.length > 1)
      throw new StreamMismatchError(
        `subjects belong to different streams (${names.join(", ")}); open one connection per stream`,
      );
    return names[0] as string;
  }

  /** Reads the stream's current first and last sequence (never cached: they move). */
  async state(stream: string): Promise<StreamState> {
    const info = await this.jsm.streams.info(stream);
    return { first: info.state.first_seq, last: info.state.last_seq, created: info.created };
  }

  /** Forgets a stream, e.g. after it was deleted under a live feed. */
  forget(stream: string): void {
    for (const [k, v] of this.cache) if ("stream" in v && v.stream === stream) this.cache.delete(k);
  }

  private lookup(filter: string): Promise<string> {
    const t = this.now();
    const hit = this.cache.get(filter);
    if (hit && t - hit.at < ("error" in hit ? NEGATIVE_TTL_MS : this.ttlMs)) {
      return "error" in hit ? Promise.reject(hit.error) : Promise.resolve(hit.stream);
    }
    // Concurrent misses for one subject (a reconnect storm onto a cold pod) share one request.
    let pending = this.inflight.get(filter);
    if (!pending) {
      pending = this.fetch(filter, t).finally(() => this.inflight.delete(filter));
      this.inflight.set(filter, pending);
    }
    return pending;
  }

  private async fetch(filter: string, t: number): Promise<string> {
    let entry: Lookup;
    try {
      entry = { at: t, ...(await this.limit(() => this.find(filter))) };
    } catch (err) {
      const known =
        err instanceof StreamNotFoundError ||
        err instanceof StreamMismatchError ||
        err instanceof StreamForbiddenError;
      if (!known) throw err; // NATS trouble: not the client's fault, not cached
      entry = { at: t, error: err };
    }
    if (this.cache.size >= MAX_ENTRIES) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(filter, entry);
    if ("error" in entry) throw entry.error;
    return entry.stream;
  }

  private async find(filter: string): Promise<{ stream: string; subjects: string[] }> {
    const names: string[] = [];
    for await (const name of this.jsm.streams.names(filter)) names.push(name);
    if (names.length === 0) throw new StreamNotFoundError(filter);
    if (names.length > 1)
      throw new StreamMismatchError(
        `subject "${filter}" spans several streams (${names.sort().join(", ")}); subscribe to narrower subjects`,
      );
    const stream = names[0] as string;
    const info = await this.jsm.streams.info(stream);
    const subjects = info.config.subjects ?? [];
    const system = subjects.some(
      (s) => s.startsWith("$") && !(this.allowKv && s.startsWith("$KV.")),
    );
    if (system)
      throw new StreamForbiddenError(`subject "${filter}" is captured by a system stream`);
    if (!subjects.some((s) => subjectIsSubset(filter, s)))
      throw new StreamMismatchError(
        `subject "${filter}" is only partly captured by stream ${stream} (${subjects.join(", ")}); subscribe to narrower subjects`,
      );
    return { stream, subjects };
  }
}
