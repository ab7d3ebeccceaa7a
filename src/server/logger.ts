import pino, { type Logger } from "pino";
import type { LogLevel } from "./config.ts";

export type { Logger };

/** Structured JSON logs on stdout (journald under systemd), one line per event. */
export function createLogger(nodeId: string, level: LogLevel): Logger {
  return pino({ level, base: { node: nodeId }, timestamp: pino.stdTimeFunctions.isoTime });
}
