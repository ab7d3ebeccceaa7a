import pino, { type Logger } from "pino";

/** pino's levels, as LOG_LEVEL accepts them. */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type { Logger };

/** Structured JSON logs on stdout (journald under systemd), one line per event. */
export function createLogger(nodeId: string, level: LogLevel): Logger {
  return pino({ level, base: { node: nodeId }, timestamp: pino.stdTimeFunctions.isoTime });
}
