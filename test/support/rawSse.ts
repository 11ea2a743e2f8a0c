import net from "node:net";
import { StringDecoder } from "node:string_decoder";

export interface RawSseRequest {
  /** The gateway's public port on 127.0.0.1. */
  port: number;
  /** Source address, so per-address limits see a client of its own (any 127.x.y.z). */
  localAddress: string;
  /** Request path and query, e.g. `/events/orders.eu.42`. */
  path: string;
  headers?: Record<string, string>;
}

/**
 * An SSE client on a raw TCP socket that decides when to read: it sends its request and then
 * reads nothing at all (as a hostile or frozen client would) until told to. EventSource cannot
 * do that, nor choose its source address. Once reading, it decodes what a browser would:
 * the status line, `Transfer-Encoding: chunked`, and SSE events (ids and comments).
 */
export class RawSseClient {
  status = 0;
  /** Ids of complete events, in arrival order. */
  readonly ids: number[] = [];
  /** Comment lines (`: ping`), in arrival order. */
  readonly comments: string[] = [];
  /** `retry:` values, in arrival order. */
  readonly retries: number[] = [];
  ended = false;
  private head = Buffer.alloc(0);
  private headDone = false;
  private chunked = false;
  private chunkLeft = 0;
  private sizeLine = "";
  private afterChunk = 0; // CRLF bytes still to skip after a chunk's data
  private readonly decoder = new StringDecoder("utf8");
  private text = "";
  private readonly waiters = new Set<() => void>();

  private constructor(readonly socket: net.Socket) {
    const end = () => {
      this.ended = true;
      this.notify();
    };
    socket.on("end", end);
    socket.on("close", end);
    socket.on("error", end);
  }

  /** Connects and sends the request; reads nothing until {@link startReading}. */
  static async open(req: RawSseRequest): Promise<RawSseClient> {
    const socket = net.connect({
      host: "127.0.0.1",
      port: req.port,
      localAddress: req.localAddress,
    });
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    socket.pause();
    const client = new RawSseClient(socket);
    const headers = { Accept: "text/event-stream", ...req.headers };
    socket.write(
      `GET ${req.path} HTTP/1.1\r\nHost: 127.0.0.1:${req.port}\r\n` +
        Object.entries(headers)
          .map(([k, v]) => `${k}: ${v}\r\n`)
          .join("") +
        "\r\n",
    );
    return client;
  }

  /** From now on, reads and decodes everything the server sends. */
  startReading(): void {
    this.socket.on("data", (chunk: Buffer) => {
      this.onData(chunk);
      this.notify();
    });
    this.socket.resume();
  }

  /** Resolves once `pred()` holds; checked after every read. Bounded by `timeoutMs`. */
  waitFor(pred: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!pred()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(
          new Error(
            `raw SSE wait for ${what} timed out after ${timeoutMs} ms: status ${this.status}, ` +
              `${this.ids.length} ids (last ${this.ids[this.ids.length - 1]}), ended ${this.ended}`,
          ),
        );
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  private onData(chunk: Buffer): void {
    if (!this.headDone) {
      this.head = Buffer.concat([this.head, chunk]);
      const at = this.head.indexOf("\r\n\r\n");
      if (at < 0) return;
      const headText = this.head.subarray(0, at).toString("latin1");
      this.status = Number(/^HTTP\/1\.1 (\d{3})/.exec(headText)?.[1] ?? 0);
      this.chunked = /^transfer-encoding:\s*chunked/im.test(headText);
      this.headDone = true;
      chunk = this.head.subarray(at + 4);
      this.head = Buffer.alloc(0);
    }
    if (!this.chunked) return this.onBody(chunk);
    let at = 0;
    while (at < chunk.length) {
      if (this.afterChunk > 0) {
        const skip = Math.min(this.afterChunk, chunk.length - at);
        this.afterChunk -= skip;
        at += skip;
      } else if (this.chunkLeft > 0) {
        const take = Math.min(this.chunkLeft, chunk.length - at);
        this.onBody(chunk.subarray(at, at + take));
        this.chunkLeft -= take;
        at += take;
        if (this.chunkLeft === 0) this.afterChunk = 2;
      } else {
        const eol = chunk.indexOf("\n", at);
        if (eol < 0) {
          this.sizeLine += chunk.subarray(at).toString("latin1");
          return;
        }
        this.sizeLine += chunk.subarray(at, eol + 1).toString("latin1");
        at = eol + 1;
        this.chunkLeft = parseInt(this.sizeLine.trim(), 16);
        this.sizeLine = "";
        if (!Number.isFinite(this.chunkLeft) || this.chunkLeft === 0) {
          this.chunkLeft = 0;
          return; // the last chunk
        }
      }
    }
  }

  private onBody(bytes: Buffer): void {
    this.text += this.decoder.write(bytes);
    let end = this.text.indexOf("\n\n");
    while (end >= 0) {
      const block = this.text.slice(0, end);
      this.text = this.text.slice(end + 2);
      for (const line of block.split("\n")) {
        if (line.startsWith("id: ")) this.ids.push(Number(line.slice(4)));
        else if (line.startsWith(":")) this.comments.push(line.slice(1).trim());
        else if (line.startsWith("retry: ")) this.retries.push(Number(line.slice(7)));
      }
      end = this.text.indexOf("\n\n");
    }
  }
}
