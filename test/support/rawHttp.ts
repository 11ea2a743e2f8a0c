import net from "node:net";

/** A raw HTTP/1.1 answer: status, headers (lower-cased names) and body. */
export interface RawAnswer {
  status: number;
  headers: Map<string, string>;
  body: string;
}

/**
 * Sends raw bytes to `baseUrl`'s host and port and reads until the server closes (or, with
 * `untilAnswer`, until one complete Content-Length answer arrived): for requests fetch will not
 * send, or that Node's HTTP parser handles before the app sees them. Bounded by `timeoutMs`.
 */
export function rawExchange(
  baseUrl: string,
  request: Buffer | string,
  opts: { timeoutMs?: number; untilAnswer?: boolean; localAddress?: string } = {},
): Promise<string> {
  const { hostname, port } = new URL(baseUrl);
  const timeoutMs = opts.timeoutMs ?? 5_000;
  return new Promise((resolve, reject) => {
    const socket = net.connect({
      port: Number(port),
      host: hostname,
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer within ${timeoutMs} ms: ${Buffer.concat(chunks)}`));
    }, timeoutMs);
    const finish = () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString("utf8"));
    };
    socket.on("data", (c: Buffer) => {
      chunks.push(c);
      if (opts.untilAnswer && complete(Buffer.concat(chunks).toString("utf8"))) {
        socket.destroy();
        finish();
      }
    });
    socket.on("error", () => undefined); // a reset after the answer is fine; we judge the answer
    socket.on("close", finish);
    socket.write(request);
  });
}

/** True once `raw` holds a whole answer with a Content-Length body. */
function complete(raw: string): boolean {
  const end = raw.indexOf("\r\n\r\n");
  if (end < 0) return false;
  const m = /\r\ncontent-length: *(\d+)/i.exec(raw.slice(0, end));
  return m !== null && Buffer.byteLength(raw.slice(end + 4)) >= Number(m[1]);
}

/** Splits a raw HTTP/1.1 answer into status, headers (lower-cased) and body. */
export function parseRaw(raw: string): RawAnswer {
  const end = raw.indexOf("\r\n\r\n");
  if (end < 0) throw new Error(`no HTTP answer: ${JSON.stringify(raw.slice(0, 200))}`);
  const [statusLine, ...lines] = raw.slice(0, end).split("\r\n");
  const headers = new Map<string, string>();
  for (const line of lines) {
    const i = line.indexOf(":");
    headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  return { status: Number(statusLine?.split(" ")[1]), headers, body: raw.slice(end + 4) };
}
