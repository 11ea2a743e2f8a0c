import pino, { type Logger } from "pino";

export type { Logger };

/** A JSON logger on stdout; `level` is the LOG_LEVEL setting. */
export function createLogger(level: string): Logger {
  return pino({ level, base: { service: "jetstream-sse-gateway" } });
}
