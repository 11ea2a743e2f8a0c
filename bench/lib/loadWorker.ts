/**
 * A load-client process: holds many SSE connections on raw sockets, decodes HTTP chunking and
 * SSE for real (SseWireDecoder), and reports to its parent over IPC. Run with child_process.fork.
 *
 * Payloads of fan-out messages start with `t=<publish time ms>;r=<round>;` (inside a JSON
 * string: see bench/lib/publish.ts) so latency is measured per delivery without parsing JSON.
 * Every connection belongs to a group (the kind of server it is connected to): a round counts
 * the connections of one group only, so several servers can hold their clients in the same
 * workers while one of them is measured.
 */
import { connect, type Socket } from "node:net";
import { Histogram, nowMs } from "./histogram";
import { SseWireDecoder, type WireEvent } from "./sseWire";

export type WorkerCommand =
  | {
      cmd: "open";
      host: string;
      port: number;
      path: string;
      cursors: Array<number | null>;
      batch: number;
      /**
       * Loopback source addresses the sockets bind to, in turn (connection i binds to entry
       * i mod length); default none: the kernel picks (127.0.0.1 towards 127.0.0.1). Each source
       * address has its own ~28,000 ephemeral ports (net.ipv4.ip_local_port_range), so many
       * thousands of connections need several, and a server's per-address bounds see several
       * clients.
       */
      localAddresses?: string[];
      /** The group the new connections belong to (see {@link WorkerCommand} `round`). */
      group: string;
      /** The loopback address the connections come from (127.x.y.z) when `localAddresses` is not given; the OS picks when neither is. */
      localAddress?: string;
    }
  /**
   * Extra request headers for the connections of the next `open`, one block per cursor, in the
   * same order (raw `Name: value\r\n` lines; "" for none). Sent before the clock starts, so a
   * storm's timing does not include shipping thousands of tokens over IPC.
   */
  | { cmd: "headers"; headers: string[] }
  /** Waits until every connection of `group` has `expect` messages of `round`. */
  | { cmd: "round"; round: number; expect: number; timeoutMs: number; group: string }
  | { cmd: "catchup"; target: number; timeoutMs: number }
  /** Waits until `group` has had no delivery for `quietMs` (at most `timeoutMs`). */
  | { cmd: "quiet"; group: string; quietMs: number; timeoutMs: number }
  | { cmd: "close" };

export type WorkerReport =
  | { type: "opened"; ok: number; failed: number; statuses: Record<string, number> }
  | { type: "headers"; count: number }
  | {
      type: "round";
      round: number;
      complete: number;
      /** Connections of the group the server had closed by the end of the round. */
      closed: number;
      /**
       * Bench messages the group received while the round lasted, of any round: what the server
       * did over that time, backlog of earlier rounds and warm-up included.
       */
      all: number;
      deliveries: number;
      lastAt: number;
      hist: { counts: Record<number, number>; total: number };
    }
  | {
      type: "caughtUp";
      complete: number;
      deliveries: number;
      duplicates: number;
      gaps: number;
      lastAt: number;
    }
  | { type: "quiet"; quiet: boolean }
  | { type: "error"; message: string };

interface Client {
  socket: Socket;
  group: string;
  /** The connection has ended: a round stops waiting for it. */
  closed: boolean;
  decoder: SseWireDecoder;
  cursor: number | null;
  lastSeq: number;
  duplicates: number;
  gaps: number;
  deliveries: number;
  roundCount: number;
}

const clients: Client[] = [];
let round = -1;
let roundGroup = "";
let roundHist = new Histogram();
let roundDeliveries = 0;
/** The connections a round is waiting for: those of its group. */
let members: Client[] = [];
/** How many of `members` have closed. */
let closedMembers = 0;
/** Bench messages of any round the round's group received since the round began. */
let roundAll = 0;
/** When each group last received a message, in {@link nowMs} time. */
const lastAtOf = new Map<string, number>();
let lastAt = 0;
let check: (() => void) | undefined;
/** In catch-up mode: the sequence every client must reach, and how many have not yet. */
let catchTarget = Infinity;
let behind = 0;
/** Header blocks for the next `open`, by cursor index (see the `headers` command). */
let nextHeaders: string[] = [];

function send(r: WorkerReport): void {
  process.send?.(r);
}

/** Reads a decimal number (digits, optional fraction) at `i`; returns it and where it ended. */
function numberAt(b: Buffer, i: number): [number, number] {
  let n = 0;
  let k = i;
  for (; k < b.length && (b[k] as number) >= 48 && (b[k] as number) <= 57; k++)
    n = n * 10 + ((b[k] as number) - 48);
  if (b[k] === 46 /* . */) {
    let scale = 0.1;
    for (k++; k < b.length && (b[k] as number) >= 48 && (b[k] as number) <= 57; k++, scale /= 10)
      n += ((b[k] as number) - 48) * scale;
  }
  return [n, k];
}

/** Where Centrifugo's publication data starts in its JSON: `{"channel":…,"pub":{"data":"t=…`. */
const DATA_KEY = Buffer.from('"data":"');

/**
 * The publish time and round of a fan-out payload, read from the bytes (nothing decoded), or
 * [NaN, NaN] when the event is not one (a Centrifugo connect reply, a notice). The payload is a
 * JSON string, `"t=<ms>;r=<round>;…"`: the gateway and the references send it as the event's
 * data, Centrifugo inside its own JSON (one native memmem finds it there, so the instrument
 * costs about the same for every kind).
 */
function stamp(e: WireEvent): [number, number] {
  if (e.count === 0 && e.carried.length === 0) return [NaN, NaN];
  let b = e.buf;
  let s = e.starts[0] as number;
  let end = e.ends[0] as number;
  if (e.carried.length > 0) {
    // The event's data came in more than one socket read (rare): join it once.
    b = Buffer.from(e.data);
    s = 0;
    end = b.length;
  }
  if (b[s] === 123 /* { */) {
    const k = b.indexOf(DATA_KEY, s);
    if (k < 0 || k >= end) return [NaN, NaN];
    s = k + DATA_KEY.length;
  } else if (b[s] === 34 /* " */) s++;
  if (b[s] !== 116 /* t */ || b[s + 1] !== 61 /* = */) return [NaN, NaN];
  const [t, next] = numberAt(b, s + 2);
  const [r] = numberAt(b, next + 3); // skip ";r="
  return [t, r];
}

function onEvent(c: Client, e: WireEvent): void {
  const at = nowMs();
  if (e.event !== "message") return; // notices
  const seq = e.idNumber;
  if (seq <= c.lastSeq) c.duplicates++;
  else if (c.cursor !== null && c.lastSeq > 0 && seq !== c.lastSeq + 1) c.gaps++;
  else if (c.cursor !== null && c.lastSeq === 0 && seq !== c.cursor + 1) c.gaps++;
  if (seq > c.lastSeq) {
    if (c.lastSeq < catchTarget && seq >= catchTarget) behind--;
    c.lastSeq = seq;
  }
  c.deliveries++;
  lastAt = at;
  const [t, r] = stamp(e);
  if (c.group === roundGroup && !Number.isNaN(t)) roundAll++;
  lastAtOf.set(c.group, at);
  if (r === round && c.group === roundGroup) {
    roundHist.add(at - t);
    roundDeliveries++;
    c.roundCount++;
  }
  check?.();
}

function open(cmd: Extract<WorkerCommand, { cmd: "open" }>): void {
  let settled = 0;
  let ok = 0;
  let failed = 0;
  const statuses: Record<string, number> = {};
  const extra = nextHeaders;
  nextHeaders = [];
  const done = () => {
    if (++settled === cmd.cursors.length) send({ type: "opened", ok, failed, statuses });
  };
  let next = 0;
  const startOne = () => {
    const i = next++;
    if (i >= cmd.cursors.length) return;
    const cursor = cmd.cursors[i] ?? null;
    const from = cmd.localAddresses;
    const localAddress = from && from.length > 0 ? from[i % from.length] : cmd.localAddress;
    const socket = connect({ host: cmd.host, port: cmd.port, localAddress });
    const c: Client = {
      socket,
      group: cmd.group,
      closed: false,
      cursor,
      lastSeq: cursor ?? 0,
      duplicates: 0,
      gaps: 0,
      deliveries: 0,
      roundCount: 0,
      decoder: new SseWireDecoder((e) => onEvent(c, e)),
    };
    clients.push(c);
    let headed = false;
    socket.setNoDelay(true);
    socket.on("connect", () => {
      socket.write(
        `GET ${cmd.path} HTTP/1.1\r\nHost: ${cmd.host}:${cmd.port}\r\nAccept: text/event-stream\r\n` +
          (cursor === null ? "" : `Last-Event-ID: ${cursor}\r\n`) +
          (extra[i] ?? "") +
          "\r\n",
      );
    });
    socket.on("data", (buf) => {
      c.decoder.push(buf);
      if (!headed && c.decoder.status > 0) {
        headed = true;
        statuses[c.decoder.status] = (statuses[c.decoder.status] ?? 0) + 1;
        if (c.decoder.status === 200) ok++;
        else failed++;
        done();
        startOne();
      }
    });
    // Why a socket closed before its status line, counted by error code (`closed`: no error).
    let why = "closed";
    socket.on("error", (err: NodeJS.ErrnoException) => {
      why = err.code ?? "closed";
    });
    socket.on("close", () => {
      c.closed = true;
      if (c.group === roundGroup && check) {
        closedMembers++;
        check();
      }
      if (!headed) {
        headed = true;
        failed++;
        statuses[why] = (statuses[why] ?? 0) + 1;
        done();
        startOne();
      }
    });
  };
  // `batch` connections in flight at once (0: all at once, as in a reconnect storm).
  const parallel = cmd.batch > 0 ? cmd.batch : cmd.cursors.length;
  for (let k = 0; k < Math.min(parallel, cmd.cursors.length); k++) startOne();
}

function waitRound(cmd: Extract<WorkerCommand, { cmd: "round" }>): void {
  round = cmd.round;
  roundGroup = cmd.group;
  roundHist = new Histogram();
  roundDeliveries = 0;
  members = clients.filter((c) => c.group === cmd.group);
  closedMembers = members.filter((c) => c.closed).length;
  roundAll = 0;
  for (const c of members) c.roundCount = 0;
  let complete = 0;
  const finish = () => {
    check = undefined;
    clearTimeout(timer);
    complete = members.filter((c) => c.roundCount >= cmd.expect).length;
    const closed = members.filter((c) => c.closed).length;
    send({
      type: "round",
      round,
      complete,
      closed,
      all: roundAll,
      deliveries: roundDeliveries,
      lastAt,
      hist: roundHist,
    });
  };
  const timer = setTimeout(finish, cmd.timeoutMs);
  // A cheap bound first (a closed connection's partial deliveries only make it looser), then
  // the exact check: every connection still open has the whole round.
  check = () => {
    if (roundDeliveries < (members.length - closedMembers) * cmd.expect) return;
    if (members.every((c) => c.closed || c.roundCount >= cmd.expect)) finish();
  };
  check();
}

function waitCatchup(cmd: Extract<WorkerCommand, { cmd: "catchup" }>): void {
  const report = () => {
    check = undefined;
    catchTarget = Infinity;
    clearTimeout(timer);
    let deliveries = 0;
    let duplicates = 0;
    let gaps = 0;
    for (const c of clients) {
      deliveries += c.deliveries;
      duplicates += c.duplicates;
      gaps += c.gaps;
    }
    const complete = clients.filter((c) => c.lastSeq >= cmd.target).length;
    send({ type: "caughtUp", complete, deliveries, duplicates, gaps, lastAt });
  };
  const timer = setTimeout(report, cmd.timeoutMs);
  catchTarget = cmd.target;
  behind = clients.filter((c) => c.lastSeq < cmd.target).length;
  check = () => {
    if (behind === 0) report();
  };
  check();
}

function waitQuiet(cmd: Extract<WorkerCommand, { cmd: "quiet" }>): void {
  const started = nowMs();
  const timer = setInterval(() => {
    const now = nowMs();
    const quiet = now - (lastAtOf.get(cmd.group) ?? 0) >= cmd.quietMs;
    if (!quiet && now - started < cmd.timeoutMs) return;
    clearInterval(timer);
    send({ type: "quiet", quiet });
  }, 50);
}

process.on("message", (m: WorkerCommand) => {
  try {
    switch (m.cmd) {
      case "open":
        return open(m);
      case "headers":
        nextHeaders = m.headers;
        return send({ type: "headers", count: m.headers.length });
      case "round":
        return waitRound(m);
      case "catchup":
        return waitCatchup(m);
      case "quiet":
        return waitQuiet(m);
      case "close":
        for (const c of clients) c.socket.destroy();
        process.exit(0);
    }
  } catch (err) {
    send({ type: "error", message: String(err) });
  }
});
