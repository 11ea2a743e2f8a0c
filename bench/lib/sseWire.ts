/**
 * An incremental client-side decoder for one SSE response on a raw socket: the HTTP/1.1 status
 * line and headers, `Transfer-Encoding: chunked` framing, then the SSE event stream per the
 * WHATWG spec (lines end in CR, LF or CRLF; `id`, `event`, `data`, `retry` fields; comments).
 * The load client uses it so the benchmark measures what a real client would decode.
 *
 * It works on bytes: CR, LF and `:` never occur inside a UTF-8 multi-byte sequence, so lines and
 * fields can be split before decoding, and an event's data is decoded only when asked for. This
 * keeps the measuring instrument cheap, so the figures describe the server, not the client.
 */

/**
 * The event being dispatched. One object per decoder, reused for every event, and valid only
 * during the callback: at a million events a second, allocations are what a client spends most
 * on. Data lines are ranges of `buf` (those read in earlier pieces are copied into `carried`);
 * `data` and `id` are decoded only when read.
 */
export class WireEvent {
  event = "message";
  /** The id when it is all ASCII digits (ids persist across events, as in a browser), else NaN. */
  idNumber = NaN;
  idText: string | undefined;
  /** Data lines read in earlier pieces, copied. */
  carried: Buffer[] = [];
  /** The piece the remaining data lines are ranges of. */
  buf: Buffer = Buffer.alloc(0);
  starts: number[] = [];
  ends: number[] = [];
  /** How many ranges of `buf` are data lines of this event. */
  count = 0;

  get id(): string {
    return this.idText ?? (Number.isNaN(this.idNumber) ? "" : String(this.idNumber));
  }

  get data(): string {
    const lines = this.carried.map((b) => b.toString("utf8"));
    for (let k = 0; k < this.count; k++)
      lines.push(this.buf.toString("utf8", this.starts[k], this.ends[k]));
    return lines.join("\n");
  }
}

type Phase = "head" | "chunk-size" | "chunk-data" | "chunk-end" | "identity" | "done";

const LF = 10;
const CR = 13;
const COLON = 58;
const SPACE = 32;

export class SseWireDecoder {
  status = 0;
  headers = new Map<string, string>();
  /** The last `retry:` value seen, in ms. */
  retry: number | undefined;
  comments = 0;
  private phase: Phase = "head";
  private head = "";
  private chunkLeft = 0;
  private sizeLine = "";
  /** Bytes of an unfinished line carried over to the next piece. */
  private partial: Buffer | undefined;
  private skipLf = false;
  private readonly current = new WireEvent();
  private event = "";

  constructor(private readonly onEvent: (e: WireEvent) => void) {}

  get ended(): boolean {
    return this.phase === "done";
  }

  /** Feeds bytes as they come off the socket. */
  push(buf: Buffer): void {
    let i = 0;
    while (i < buf.length && this.phase !== "done") {
      switch (this.phase) {
        case "head": {
          const text = this.head + buf.toString("latin1", i);
          const end = text.indexOf("\r\n\r\n");
          if (end < 0) {
            this.head = text;
            return;
          }
          this.parseHead(text.slice(0, end));
          i += end + 4 - this.head.length;
          this.head = "";
          this.phase =
            this.headers.get("transfer-encoding") === "chunked" ? "chunk-size" : "identity";
          break;
        }
        case "chunk-size": {
          const nl = buf.indexOf(LF, i);
          if (nl < 0) {
            this.sizeLine += buf.toString("latin1", i);
            return;
          }
          this.sizeLine += buf.toString("latin1", i, nl);
          i = nl + 1;
          const size = parseInt(this.sizeLine.trim().split(";")[0] as string, 16);
          this.sizeLine = "";
          if (!Number.isFinite(size)) throw new Error("bad chunk size");
          if (size === 0) this.phase = "done";
          else {
            this.chunkLeft = size;
            this.phase = "chunk-data";
          }
          break;
        }
        case "chunk-data": {
          const n = Math.min(this.chunkLeft, buf.length - i);
          this.sse(buf.subarray(i, i + n));
          i += n;
          this.chunkLeft -= n;
          if (this.chunkLeft === 0) this.phase = "chunk-end";
          break;
        }
        case "chunk-end": {
          // The CRLF after each chunk's data.
          if (buf[i] === LF) this.phase = "chunk-size";
          i++;
          break;
        }
        case "identity":
          this.sse(buf.subarray(i));
          i = buf.length;
          break;
      }
    }
  }

  private parseHead(text: string): void {
    const lines = text.split("\r\n");
    this.status = Number((lines[0] ?? "").split(" ")[1]);
    for (const l of lines.slice(1)) {
      const c = l.indexOf(":");
      if (c > 0) this.headers.set(l.slice(0, c).trim().toLowerCase(), l.slice(c + 1).trim());
    }
  }

  /** Splits the event stream into lines (CR, LF or CRLF) and interprets each. */
  private sse(piece: Buffer): void {
    let b = piece;
    if (this.partial) {
      b = Buffer.concat([this.partial, piece]);
      this.partial = undefined;
    }
    const ev = this.current;
    ev.buf = b;
    const n = b.length;
    let i = 0;
    if (this.skipLf) {
      // The CR that ended the previous piece was the first half of a CRLF.
      this.skipLf = false;
      if (b[0] === LF) i = 1;
    }
    let lineStart = i;
    while (i < n) {
      const c = b[i];
      if (c !== LF && c !== CR) {
        i++;
        continue;
      }
      this.line(b, lineStart, i);
      if (c === CR) {
        if (i + 1 === n) this.skipLf = true;
        else if (b[i + 1] === LF) i++;
      }
      lineStart = ++i;
    }
    // Copies: `b` may be the socket's own buffer, which must not be kept.
    if (lineStart < n) this.partial = Buffer.from(b.subarray(lineStart));
    for (let k = 0; k < ev.count; k++)
      ev.carried.push(Buffer.from(b.subarray(ev.starts[k], ev.ends[k])));
    ev.count = 0;
  }

  private line(b: Buffer, s: number, e: number): void {
    const ev = this.current;
    if (s === e) {
      if (ev.count > 0 || ev.carried.length > 0) {
        ev.event = this.event || "message";
        this.onEvent(ev);
        ev.count = 0;
        if (ev.carried.length > 0) ev.carried = [];
      }
      this.event = "";
      return;
    }
    if (b[s] === COLON) {
      this.comments++;
      return;
    }
    let colon = s;
    while (colon < e && b[colon] !== COLON) colon++;
    let vs = colon + 1;
    if (vs < e && b[vs] === SPACE) vs++;
    if (vs > e) vs = e;
    const name = colon - s;
    if (name === 4 && b[s] === 100 && b[s + 1] === 97 && b[s + 2] === 116 && b[s + 3] === 97) {
      ev.starts[ev.count] = vs; // "data"
      ev.ends[ev.count] = e;
      ev.count++;
    } else if (name === 2 && b[s] === 105 && b[s + 1] === 100) {
      this.id(b, vs, e);
    } else if (name === 5 && b.toString("latin1", s, colon) === "event") {
      this.event = b.toString("utf8", vs, e);
    } else if (name === 5 && b.toString("latin1", s, colon) === "retry") {
      const v = b.toString("latin1", vs, e);
      if (/^[0-9]+$/.test(v)) this.retry = Number(v);
    }
  }

  /** An `id` field: kept as a number when it is digits, as text otherwise; NUL voids it. */
  private id(b: Buffer, vs: number, e: number): void {
    let num = 0;
    let digits = vs < e;
    for (let k = vs; k < e; k++) {
      const c = b[k] as number;
      if (c === 0) return;
      if (c < 48 || c > 57) digits = false;
      else num = num * 10 + (c - 48);
    }
    const ev = this.current;
    ev.idNumber = digits ? num : NaN;
    ev.idText = digits ? undefined : b.toString("utf8", vs, e);
  }
}
