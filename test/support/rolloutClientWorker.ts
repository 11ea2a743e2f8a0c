/**
 * A child process holding part of a rollout's clients (rolloutClients.ts `forkedFleet`):
 * answers its parent's requests over IPC, one at a time.
 */
import { ClientFleet, type WorkerReply, type WorkerRequest } from "./rolloutClients";

const fleet = new ClientFleet();

function reply(r: WorkerReply): void {
  process.send?.(r);
}

process.on("message", (req: WorkerRequest) => {
  void (async () => {
    try {
      switch (req.cmd) {
        case "open":
          await fleet.open(req.opts);
          return reply({ type: "opened" });
        case "progress":
          return reply({ type: "progress", progress: fleet.progress(req.finalSeq) });
        case "summaries":
          return reply({ type: "summaries", summaries: fleet.summaries() });
        case "close":
          fleet.close();
          // Disconnecting ends the process (below), once the answer is on its way.
          process.send?.({ type: "closed" } satisfies WorkerReply, () => process.disconnect());
          return;
      }
    } catch (err) {
      reply({ type: "error", message: err instanceof Error ? err.message : String(err) });
    }
  })();
});
// The parent going away (even killed) ends the worker: its IPC channel closes.
process.on("disconnect", () => process.exit(0));
