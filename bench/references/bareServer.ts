/**
 * Bare `node:http` references for the benchmarks, serving the gateway's own frames to the same
 * clients from the same JetStream messages (one ordered consumer), with no framework at all:
 *
 * - MODE=naive: one `res.write()` per frame per client: what most SSE servers do.
 * - MODE=ideal: each client's whole burst (BURST frames) in one write: the least work any
 *   Node server can do for the job.
 * - MODE=idle: holds connections and sends nothing (the memory reference).
 */
import { createServer, type ServerResponse } from "node:http";
import { connect } from "@nats-io/transport-node";
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { encodeEvent, encodeRetry } from "../../src/sse/encoder";

const mode = process.env.MODE ?? "naive";
const burst = Number(process.env.BURST ?? 100);
const clients = new Set<ServerResponse>();

const server = createServer((req, res) => {
  if (req.url === "/readyz") {
    res.end("ok");
    return;
  }
  res.writeHead(200, {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache, no-transform",
  });
  res.write(encodeRetry(2000));
  clients.add(res);
  res.on("close", () => clients.delete(res));
});

async function main(): Promise<void> {
  if (mode !== "idle") {
    const nc = await connect({ servers: process.env.NATS_URL ?? "127.0.0.1:4222" });
    const stream = process.env.STREAM ?? "BENCH";
    const info = await (await jetstreamManager(nc)).streams.info(stream);
    const consumer = await jetstream(nc).consumers.get(stream, {
      filter_subjects: [process.env.SUBJECT ?? "bench.fanout"],
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: info.state.last_seq + 1,
    });
    let frames: Buffer[] = [];
    await consumer.consume({
      max_messages: 512,
      callback: (m) => {
        const frame = encodeEvent(m.seq, m.data);
        if (mode === "naive") {
          for (const res of clients) res.write(frame);
          return;
        }
        frames.push(frame);
        if (frames.length === burst) {
          const all = Buffer.concat(frames);
          frames = [];
          for (const res of clients) res.write(all);
        }
      },
    });
  }
  server.listen(Number(process.env.PORT ?? 8090), "127.0.0.1", 4096);
}

process.on("SIGTERM", () => process.exit(0));
void main();
