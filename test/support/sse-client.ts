import { EventSource, type FetchLike } from "eventsource";

export interface Received {
  id: string;
  data: string;
  type: string;
}

export interface SseRecorderInit {
  /** Sent on every request, including the first (e.g. Last-Event-ID, Authorization). */
  headers?: Record<string, string>;
  /** Named event types to record besides "message". */
  types?: string[];
}

const DEFAULT_TYPES = ["gateway.gap", "gateway.reset"];

/**
 * Records what a spec-following EventSource client (the `eventsource` package, which reconnects
 * and sends Last-Event-ID itself) receives. EventSource dispatches `event: x` frames only to
 * listeners registered for "x", so named types must be listed up front to be recorded.
 */
export class SseRecorder {
  readonly events: Received[] = [];
  errors = 0;
  opens = 0;
  private readonly source: EventSource;
  private readonly waiters = new Set<() => void>();

  constructor(url: string, init?: SseRecorderInit) {
    const extra = init?.headers ?? {};
    // The package has no headers option; its fetch hook is the documented way to add them.
    // Our headers go last so a Last-Event-ID given here wins on the first request; on
    // reconnects the library's own (newer) Last-Event-ID must win, so drop ours once it sends one.
    const fetchWithHeaders: FetchLike = (input, reqInit) => {
      const headers: Record<string, string> = { ...reqInit.headers };
      const libHasLastId = Object.keys(headers).some((k) => k.toLowerCase() === "last-event-id");
      for (const [k, v] of Object.entries(extra)) {
        if (libHasLastId && k.toLowerCase() === "last-event-id") continue;
        headers[k] = v;
      }
      return fetch(input, { ...reqInit, headers });
    };
    this.source = new EventSource(url, { fetch: fetchWithHeaders });
    this.source.addEventListener("open", () => {
      this.opens++;
      this.notify();
    });
    this.source.addEventListener("error", () => {
      this.errors++;
      this.notify();
    });
    for (const type of ["message", ...(init?.types ?? DEFAULT_TYPES)]) {
      this.source.addEventListener(type, (ev: MessageEvent) => {
        this.events.push({ id: ev.lastEventId, data: String(ev.data), type: ev.type });
        this.notify();
      });
    }
  }

  /** Resolves once `pred(events)` holds; checked now and after every event, open and error. */
  waitFor(pred: (events: Received[]) => boolean, timeoutMs = 10_000): Promise<void> {
    if (pred(this.events)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!pred(this.events)) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        const last = JSON.stringify(this.events.slice(-5));
        reject(
          new Error(
            `SSE wait timed out after ${timeoutMs} ms: ${this.events.length} events seen ` +
              `(opens=${this.opens}, errors=${this.errors}, readyState=${this.source.readyState}); last: ${last}`,
          ),
        );
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  waitForCount(n: number, timeoutMs?: number): Promise<void> {
    return this.waitFor((events) => events.length >= n, timeoutMs);
  }

  close(): void {
    this.source.close();
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

/** One plain request, body read in full: for status codes and JSON error bodies. */
export async function rawGet(
  url: string,
  headers?: Record<string, string>,
): Promise<{ status: number; headers: Headers; body: string }> {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(5_000) });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

/**
 * Streams a response for `ms` milliseconds and returns the raw bytes as text, for byte-exact
 * framing checks that an EventSource parser would hide. Ends early if the server ends the body.
 */
export async function readSseFor(
  url: string,
  ms: number,
  headers?: Record<string, string>,
): Promise<{ status: number; headers: Headers; text: string }> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), ms);
  let text = "";
  try {
    const res = await fetch(url, { headers, signal: controller.signal });
    if (!res.body) return { status: res.status, headers: res.headers, text };
    const decoder = new TextDecoder();
    const reader = res.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
      text += decoder.decode();
    } catch (err) {
      // Our own abort is how a time-boxed read ends; anything else is a real failure.
      if (!controller.signal.aborted) throw err;
    }
    return { status: res.status, headers: res.headers, text };
  } finally {
    clearTimeout(timer);
  }
}
