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

/** One dispatched event; `data` is decoded (UTF-8, lines joined by LF) on first access. */
export class WireEvent {
  private text: string | undefined;
  constructor(
    readonly id: string,
    readonly event: string,
    /** The raw bytes of each `data:` line. */
    readonly dataLines: readonly Buffer[],
  ) {}

  get data(): string {
    this.text ??= this.dataLines.map((b) => b.toString("utf8")).join("\n");
    return this.text;
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
  private id = "";
  private event = "";
  private data: Buffer[] = [];

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
    let bytes = piece;
    if (this.partial) {
      bytes = Buffer.concat([this.partial, piece]);
      this.partial = undefined;
    }
    let i = 0;
    if (this.skipLf) {
      // The CR that ended the previous piece was the first half of a CRLF.
      this.skipLf = false;
      if (bytes[0] === LF) i = 1;
    }
    // memchr for both line ends; the CR position is cached so a stream without CRs costs one scan.
    let cr = bytes.indexOf(CR, i);
    for (;;) {
      const lf = bytes.indexOf(LF, i);
      if (cr >= 0 && cr < i) cr = bytes.indexOf(CR, i);
      const end = lf < 0 ? cr : cr < 0 ? lf : Math.min(lf, cr);
      if (end < 0) break;
      this.line(bytes, i, end);
      if (end === cr && bytes[end + 1] === LF) i = end + 2;
      else {
        if (end === cr && end + 1 === bytes.length) this.skipLf = true;
        i = end + 1;
      }
    }
    if (i < bytes.length) this.partial = Buffer.from(bytes.subarray(i));
  }

  private line(b: Buffer, s: number, e: number): void {
    if (s === e) {
      if (this.data.length > 0)
        this.onEvent(new WireEvent(this.id, this.event || "message", this.data));
      this.data = [];
      this.event = "";
      return;
    }
    if (b[s] === COLON) {
      this.comments++;
      return;
    }
    let colon = b.indexOf(COLON, s);
    if (colon < 0 || colon > e) colon = e;
    let vs = colon + 1;
    if (vs < e && b[vs] === SPACE) vs++;
    if (vs > e) vs = e;
    const n = colon - s;
    if (n === 4 && b[s] === 100 && b[s + 1] === 97 && b[s + 2] === 116 && b[s + 3] === 97) {
      this.data.push(b.subarray(vs, e)); // "data"
    } else if (n === 2 && b[s] === 105 && b[s + 1] === 100) {
      const id = b.toString("utf8", vs, e); // "id"
      if (!id.includes("\u0000")) this.id = id;
    } else if (n === 5 && b.toString("latin1", s, colon) === "event") {
      this.event = b.toString("utf8", vs, e);
    } else if (n === 5 && b.toString("latin1", s, colon) === "retry") {
      const v = b.toString("latin1", vs, e);
      if (/^[0-9]+$/.test(v)) this.retry = Number(v);
    }
  }
}
