/**
 * A stand-in OTLP/HTTP collector for the tracing benchmark: a node:http server on 127.0.0.1 that
 * accepts `POST /v1/traces` (any body), counts requests and bytes, and answers 200
 * `application/x-protobuf` with an empty body (an empty ExportTraceServiceResponse: all
 * accepted). It never decodes anything: it only has to be somewhere cheap for the exporter to send.
 *
 * It runs in a process of its own (`forkOtlpSink`, which forks this file) so the CPU it spends
 * receiving spans is neither the gateway's nor the bench driver's. Forked with an optional port
 * argument (default 0: an ephemeral port), it reports the port it bound and, on request, its
 * counts to its parent over IPC.
 */
import { fork } from "node:child_process";
import { createServer, type Server } from "node:http";
import path from "node:path";
import { DIST } from "./procs";

export interface SinkCounts {
  /** POST /v1/traces requests received, and the bytes of their bodies. */
  requests: number;
  bytes: number;
  /** Requests to any other method or path (answered too: 200 for a POST, else 404). */
  other: number;
}

type SinkCommand = { cmd: "counts" } | { cmd: "close" };
type SinkReport = { type: "listening"; port: number } | ({ type: "counts" } & SinkCounts);

/** Starts the sink's HTTP server in this process. */
export function startSinkServer(
  port = 0,
): Promise<{ server: Server; port: number; counts: SinkCounts }> {
  const counts: SinkCounts = { requests: 0, bytes: 0, other: 0 };
  const server = createServer((req, res) => {
    let bytes = 0;
    req.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
    });
    req.on("end", () => {
      const traces = req.method === "POST" && req.url?.split("?")[0] === "/v1/traces";
      if (traces) {
        counts.requests++;
        counts.bytes += bytes;
      } else counts.other++;
      res.writeHead(req.method === "POST" ? 200 : 404, {
        "Content-Type": "application/x-protobuf",
        "Content-Length": "0",
      });
      res.end();
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      const address = server.address();
      if (address === null || typeof address === "string")
        return reject(new Error("otlpSink: no TCP address"));
      resolve({ server, port: address.port, counts });
    });
  });
}

/** The parent's handle on a forked sink. */
export interface OtlpSink {
  /** Base URL, e.g. http://127.0.0.1:41234 (the exporter's endpoint is `${url}/v1/traces`). */
  url: string;
  pid: number;
  /** The sink's counts so far (cumulative since it started). */
  counts(): Promise<SinkCounts>;
  close(): Promise<void>;
}

/** Forks the sink into its own process and waits until it listens. */
export async function forkOtlpSink(port = 0): Promise<OtlpSink> {
  const child = fork(path.join(DIST, "bench", "lib", "otlpSink.js"), [String(port)], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const next = <T extends SinkReport["type"]>(type: T) =>
    new Promise<Extract<SinkReport, { type: T }>>((resolve, reject) => {
      const onMessage = (m: SinkReport) => {
        if (m.type !== type) return;
        cleanup();
        resolve(m as Extract<SinkReport, { type: T }>);
      };
      const onExit = (code: number | null) => {
        cleanup();
        reject(new Error(`otlpSink exited with ${code}`));
      };
      const cleanup = () => {
        child.off("message", onMessage);
        child.off("exit", onExit);
      };
      child.on("message", onMessage);
      child.once("exit", onExit);
    });
  const listening = await next("listening");
  return {
    url: `http://127.0.0.1:${listening.port}`,
    pid: child.pid as number,
    async counts() {
      const reply = next("counts");
      child.send({ cmd: "counts" } satisfies SinkCommand);
      const { requests, bytes, other } = await reply;
      return { requests, bytes, other };
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const t = setTimeout(() => child.kill("SIGKILL"), 2000);
        child.once("exit", () => {
          clearTimeout(t);
          resolve();
        });
        child.send({ cmd: "close" } satisfies SinkCommand);
      }),
  };
}

// Forked by forkOtlpSink: serve, and answer the parent.
if (require.main === module && process.send) {
  const send = (r: SinkReport) => process.send?.(r);
  void startSinkServer(Number(process.argv[2] ?? "0")).then(
    ({ server, port, counts }) => {
      process.on("message", (m: SinkCommand) => {
        if (m.cmd === "counts") send({ type: "counts", ...counts });
        else if (m.cmd === "close") {
          server.closeAllConnections();
          server.close(() => process.exit(0));
        }
      });
      // The bench driver went away: do not outlive it.
      process.on("disconnect", () => process.exit(0));
      send({ type: "listening", port });
    },
    (err: Error) => {
      process.stderr.write(`otlpSink: ${err.stack ?? err.message}\n`);
      process.exit(1);
    },
  );
}
