/** NATS_URL as the gateway reads it, for the helper scripts. */
export function natsServers(): string[] {
  return (process.env.NATS_URL ?? "nats://127.0.0.1:4222").split(",").map((s) => s.trim());
}
