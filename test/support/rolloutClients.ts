/**
 * Many spec-following SSE clients (the `eventsource` package: it reconnects by itself, honours
 * `retry:` and sends Last-Event-ID), each from its own loopback source address, recording only
 * what the verdict needs: per client the last id, repeats, gaps and the longest silence. Nothing
 * is assumed: lost and duplicated messages are counted from the ids as they arrive.
 *
 * The package's `fetch` option carries the requests. It is backed by node:http rather than an
 * undici Agent with `connect.localAddress`: Node's built-in fetch offers no public way to bind a
 * source address, and the `undici` package is only a transitive dependency here.
 */
import { fork, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import { request } from "node:http";
import path from "node:path";
import { Readable } from "node:stream";
import { EventSource, type FetchLike, type FetchLikeResponse } from "eventsource";
import { isRunning, terminate, trackChild } from "./process";

/** What one client saw, small enough to send over IPC for thousands of clients. */
export interface ClientSummary {
  index: number;
  /** The loopback address its connections come from. */
  source: string;
  /** Its start: it must receive every sequence above this one. */
  cursor: number;
  /** Message events received. */
  received: number;
  /** Highest id received (the cursor before the first). */
  lastId: number;
  /** Ids skipped over: the sequence jumped past lastId + 1. */
  gaps: number;
  /** Ids received at or below one already received (repeats, or out of order). */
  repeats: number;
  /** Payloads that do not belong to their id (the publisher numbers them). */
  mismatched: number;
  /** Notice events (`gateway.gap`, `gateway.reset`): none are expected. */
  notices: number;
  /** HTTP requests made: the first connection, then every reconnect. */
  requests: number;
  /** Reconnects that sent Last-Event-ID, and those whose Last-Event-ID was not the last id seen. */
  resumes: number;
  wrongResumes: number;
  /** Responses that opened (200 text/event-stream), counting those that carried no message. */
  opens: number;
  emptyStreams: number;
  /** `error` events (each reconnect is announced by one). */
  errors: number;
  /** Set when the EventSource gave up for good (a non-200 answer): the message it gave. */
  failure: string | undefined;
  /** Longest time between two consecutive messages, ms. */
  maxGapMs: number;
}

export interface FleetOpenOptions {
  /** The stream URL (through the balancer), without a start position. */
  url: string;
  count: number;
  /** Index of the first client (clients spread over processes keep distinct indices). */
  firstIndex: number;
  /** Every client starts after this sequence (`?lastEventId=`), so its expectations are exact. */
  cursor: number;
  /** Clients sharing one source address. */
  clientsPerAddress: number;
}

/** Progress of a fleet towards a final sequence. */
export interface FleetProgress {
  clients: number;
  opened: number;
  /** Clients that have received at least one message. */
  receiving: number;
  caughtUp: number;
  failed: number;
}

/** The loopback source address of client `index`: 127.10.0.1, 127.10.0.2, … (never .0/.255). */
export function sourceAddress(index: number, clientsPerAddress: number): string {
  const n = Math.floor(index / clientsPerAddress);
  const x = 10 + Math.floor(n / (254 * 256));
  if (x > 254) throw new Error(`client ${index}: out of loopback source addresses`);
  return `127.${x}.${Math.floor(n / 254) % 256}.${1 + (n % 254)}`;
}

/**
 * A FetchLike for `eventsource` on node:http, bound to one local address. Each request opens its
 * own TCP connection (no pooling), so every reconnect is placed afresh by the balancer, as a
 * Kubernetes Service places connections.
 */
export function sourceBoundFetch(
  localAddress: string,
  onRequest: (headers: Record<string, string>) => void,
): FetchLike {
  return (input, init) =>
    new Promise<FetchLikeResponse>((resolve, reject) => {
      const url = new URL(String(input));
      onRequest(init.headers);
      const signal: unknown = init.signal;
      const req = request(url, {
        method: "GET",
        headers: init.headers,
        localAddress,
        agent: false,
        signal: signal instanceof AbortSignal ? signal : undefined,
      });
      req.once("error", reject);
      req.once("response", (res) => {
        resolve({
          url: url.href,
          status: res.statusCode ?? 0,
          redirected: false,
          headers: {
            get: (name) => {
              const v = res.headers[name.toLowerCase()];
              return v === undefined ? null : Array.isArray(v) ? v.join(", ") : v;
            },
          },
          body: Readable.toWeb(res),
        });
      });
      req.end();
    });
}

/** The publisher's payload for the n-th message (sequence n + 1 on a fresh stream). */
export function payloadFor(n: number, publishedAt: number): string {
  return `${n} ${publishedAt}`;
}

class FleetClient {
  readonly summary: ClientSummary;
  private readonly source: EventSource;
  private lastAt = 0;
  /** Between an `open` and the `error` that announces the reconnect. */
  private streaming = false;
  private eventsInStream = 0;

  constructor(index: number, url: string, cursor: number, address: string) {
    this.summary = {
      index,
      source: address,
      cursor,
      received: 0,
      lastId: cursor,
      gaps: 0,
      repeats: 0,
      mismatched: 0,
      notices: 0,
      requests: 0,
      resumes: 0,
      wrongResumes: 0,
      opens: 0,
      emptyStreams: 0,
      errors: 0,
      failure: undefined,
      maxGapMs: 0,
    };
    const s = this.summary;
    const fetch = sourceBoundFetch(address, (headers) => {
      s.requests++;
      const resume = headers["Last-Event-ID"];
      if (resume === undefined) return;
      s.resumes++;
      if (resume !== String(s.lastId)) s.wrongResumes++;
    });
    // `?lastEventId=` is the documented start for clients that cannot set headers; on every
    // reconnect EventSource's own Last-Event-ID header wins over it.
    this.source = new EventSource(`${url}?lastEventId=${cursor}`, { fetch });
    this.source.addEventListener("open", () => {
      s.opens++;
      this.streaming = true;
      this.eventsInStream = 0;
    });
    this.source.addEventListener("message", (ev) => this.onMessage(ev));
    for (const type of ["gateway.gap", "gateway.reset"]) {
      this.source.addEventListener(type, () => s.notices++);
    }
    this.source.addEventListener("error", (ev) => {
      s.errors++;
      if (this.streaming && this.eventsInStream === 0) s.emptyStreams++;
      this.streaming = false;
      if (this.source.readyState === EventSource.CLOSED) {
        s.failure = `${(ev as Event & { message?: string }).message ?? "closed"}`;
      }
    });
  }

  private onMessage(ev: MessageEvent): void {
    const s = this.summary;
    const now = Date.now();
    const id = Number(ev.lastEventId);
    this.eventsInStream++;
    if (s.received > 0) s.maxGapMs = Math.max(s.maxGapMs, now - this.lastAt);
    this.lastAt = now;
    s.received++;
    if (id <= s.lastId) {
      s.repeats++;
      return;
    }
    if (id > s.lastId + 1) s.gaps += id - s.lastId - 1;
    s.lastId = id;
    const data = String(ev.data);
    if (data.slice(0, data.indexOf(" ")) !== String(id - 1)) s.mismatched++;
  }

  close(): void {
    this.source.close();
  }
}

/** Clients in this process. */
export class ClientFleet {
  private readonly clients: FleetClient[] = [];

  /** Opens `count` clients, `perTick` at a time so the first connect is not one SYN burst. */
  async open(opts: FleetOpenOptions, perTick = 100): Promise<void> {
    for (let i = 0; i < opts.count; i++) {
      const index = opts.firstIndex + i;
      const address = sourceAddress(index, opts.clientsPerAddress);
      this.clients.push(new FleetClient(index, opts.url, opts.cursor, address));
      if ((i + 1) % perTick === 0) await new Promise((r) => setTimeout(r, 50));
    }
  }

  progress(finalSeq: number): FleetProgress {
    let opened = 0;
    let receiving = 0;
    let caughtUp = 0;
    let failed = 0;
    for (const { summary: s } of this.clients) {
      if (s.opens > 0) opened++;
      if (s.received > 0) receiving++;
      if (s.lastId >= finalSeq) caughtUp++;
      if (s.failure !== undefined) failed++;
    }
    return { clients: this.clients.length, opened, receiving, caughtUp, failed };
  }

  summaries(): ClientSummary[] {
    return this.clients.map((c) => ({ ...c.summary }));
  }

  close(): void {
    for (const c of this.clients) c.close();
  }
}

/** Clients in this process or spread over child processes, behind one asynchronous face. */
export interface Fleet {
  /** Opens `count` clients, all starting after `cursor`. */
  open(url: string, count: number, cursor: number, clientsPerAddress: number): Promise<void>;
  progress(finalSeq: number): Promise<FleetProgress>;
  summaries(): Promise<ClientSummary[]>;
  close(): Promise<void>;
}

/** All clients in this process (the Jest test: its EventSources are the ones asserted on). */
export function localFleet(): Fleet {
  const fleet = new ClientFleet();
  return {
    open: (url, count, cursor, clientsPerAddress) =>
      fleet.open({ url, count, firstIndex: 0, cursor, clientsPerAddress }),
    progress: (finalSeq) => Promise.resolve(fleet.progress(finalSeq)),
    summaries: () => Promise.resolve(fleet.summaries()),
    close: () => Promise.resolve(fleet.close()),
  };
}

export type WorkerRequest =
  | { cmd: "open"; opts: FleetOpenOptions }
  | { cmd: "progress"; finalSeq: number }
  | { cmd: "summaries" }
  | { cmd: "close" };

export type WorkerReply =
  | { type: "opened" }
  | { type: "progress"; progress: FleetProgress }
  | { type: "summaries"; summaries: ClientSummary[] }
  | { type: "closed" }
  | { type: "error"; message: string };

/**
 * Clients spread over `processes` child processes (rolloutClientWorker.js, compiled: the
 * `make rollout` benchmark), so thousands of EventSources do not share one event loop.
 */
export function forkedFleet(processes: number): Fleet {
  const script = path.join(__dirname, "rolloutClientWorker.js");
  if (!fs.existsSync(script)) throw new Error(`${script} is missing: run \`npm run build\``);
  const workers = Array.from({ length: processes }, () => {
    const child = fork(script, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    trackChild(child);
    return child;
  });
  const ask = <T extends WorkerReply["type"]>(
    child: ChildProcess,
    req: WorkerRequest,
    type: T,
  ): Promise<Extract<WorkerReply, { type: T }>> =>
    new Promise((resolve, reject) => {
      const onMessage = (reply: WorkerReply): void => {
        if (reply.type !== type && reply.type !== "error") return;
        child.off("message", onMessage);
        child.off("exit", onExit);
        if (reply.type === "error") reject(new Error(`client worker: ${reply.message}`));
        else resolve(reply as Extract<WorkerReply, { type: T }>);
      };
      const onExit = (code: number | null): void => {
        child.off("message", onMessage);
        reject(new Error(`client worker exited (${code}) before answering ${req.cmd}`));
      };
      child.on("message", onMessage);
      child.once("exit", onExit);
      child.send(req);
    });
  return {
    open: async (url, count, cursor, clientsPerAddress) => {
      let firstIndex = 0;
      await Promise.all(
        workers.map((w, i) => {
          const share = Math.floor(count / processes) + (i < count % processes ? 1 : 0);
          const opts = { url, count: share, firstIndex, cursor, clientsPerAddress };
          firstIndex += share;
          return ask(w, { cmd: "open", opts }, "opened");
        }),
      );
    },
    progress: async (finalSeq) => {
      const parts = await Promise.all(
        workers.map((w) => ask(w, { cmd: "progress", finalSeq }, "progress")),
      );
      const sum = (k: keyof FleetProgress): number => parts.reduce((n, p) => n + p.progress[k], 0);
      return {
        clients: sum("clients"),
        opened: sum("opened"),
        receiving: sum("receiving"),
        caughtUp: sum("caughtUp"),
        failed: sum("failed"),
      };
    },
    summaries: async () =>
      (await Promise.all(workers.map((w) => ask(w, { cmd: "summaries" }, "summaries")))).flatMap(
        (r) => r.summaries,
      ),
    close: async () => {
      await Promise.all(
        workers.map(async (w) => {
          if (!isRunning(w)) return;
          await ask(w, { cmd: "close" }, "closed").catch(() => undefined);
          await terminate(w, 5_000);
        }),
      );
    },
  };
}
