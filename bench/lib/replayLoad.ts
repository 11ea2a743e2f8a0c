import type { ServerProc } from "./procs";
import { fmt } from "./report";

/**
 * The replays' load on NATS as the gateway counts it: messages JetStream sent to replay
 * consumers (`sse_replay_messages_read_total`; a gateway older than shared replays has no such
 * counter, and each of its replays read what it delivered, `sse_replayed_events_total`), and how
 * sessions shared runs. Empty for a server that is not the gateway.
 */
export async function replayLoad(server: ServerProc): Promise<string> {
  if (server.adminPort === undefined) return "";
  const text = await (await fetch(`http://127.0.0.1:${server.adminPort}/metrics`)).text();
  const value = (name: string, label = "") => {
    const line = text.split("\n").find((l) => l.startsWith(`${name}${label} `));
    return line === undefined ? undefined : Number(line.split(" ")[1]);
  };
  const read = value("sse_replay_messages_read_total");
  const delivered = value("sse_replayed_events_total") ?? 0;
  const runs = (how: string) => value("sse_replay_shared_sessions_total", `{how="${how}"}`) ?? 0;
  return read === undefined
    ? `replay consumers read ${fmt(delivered)} messages from JetStream (one replay per session: sse_replayed_events_total)`
    : `replay consumers read ${fmt(read)} messages from JetStream (sse_replay_messages_read_total), delivered ${fmt(delivered)} replayed events; shared runs started ${fmt(runs("started"))}, joined ${fmt(runs("joined"))}, fell out ${fmt(runs("fell-out"))}`;
}
