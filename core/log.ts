/**
 * Structured logging: one `key=value` line per record, as journald and the EPICS world read them.
 *
 * Built on `@logtape/logtape` (JSR's `@std/log` is not reachable here). Usage:
 *
 * ```ts
 * const log = getLog("controller");
 * log.info("State switch", { old: "INIT", new: "WARMUP" });
 * // 2026-11-23T19:44:00.123Z INFO diss.controller msg="State switch" old=INIT new=WARMUP
 * ```
 *
 * @module
 */

import {
  configureSync,
  getLogger,
  type Logger,
  type LogLevel,
  type LogRecord,
  resetSync,
} from "@logtape/logtape";
import process from "node:process";

export type { Logger, LogLevel };

/** Log levels accepted by `--log-level`, lowest first. */
export const LOG_LEVELS: readonly LogLevel[] = [
  "trace",
  "debug",
  "info",
  "warning",
  "error",
  "fatal",
];

const LEVEL_NAMES: Record<LogLevel, string> = {
  trace: "TRACE",
  debug: "DEBUG",
  info: "INFO",
  warning: "WARN",
  error: "ERROR",
  fatal: "FATAL",
};

/** Returns the logger of one part of the program, category `diss.<name>`. */
export function getLog(name: string): Logger {
  return getLogger(["diss", ...name.split(".")]);
}

/** Quotes a value for a `key=value` line when it contains spaces, quotes or `=`. */
export function formatLogValue(value: unknown): string {
  let text: string;
  if (value instanceof Error) text = value.message;
  else if (typeof value === "string") text = value;
  else if (value === undefined) text = "undefined";
  else if (typeof value === "object" && value !== null) {
    try {
      text = JSON.stringify(value);
    } catch {
      text = String(value);
    }
  } else text = String(value);
  if (text === "" || /[\s"=\\]/.test(text)) {
    return `"${text.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n")}"`;
  }
  return text;
}

/** Formats one record as `TIME LEVEL category msg="..." key=value ...` (with a newline). */
export function formatLogRecord(record: LogRecord): string {
  const parts = [
    new Date(record.timestamp).toISOString(),
    LEVEL_NAMES[record.level],
    record.category.join("."),
  ];
  const message = record.message.map((m) => (typeof m === "string" ? m : formatLogValue(m)))
    .join("");
  if (message !== "") parts.push(`msg=${formatLogValue(message)}`);
  for (const [key, value] of Object.entries(record.properties)) {
    parts.push(`${key}=${formatLogValue(value)}`);
  }
  return parts.join(" ") + "\n";
}

/** Options of {@link setupLogging}. */
export interface LoggingOptions {
  /** Lowest level written; default `info`. */
  level?: LogLevel;
  /** Where lines go; default standard error. */
  write?: (line: string) => void;
}

const encoder = new TextEncoder();

function writeStderr(line: string): void {
  const bytes = encoder.encode(line);
  let offset = 0;
  while (offset < bytes.length) offset += Deno.stderr.writeSync(bytes.subarray(offset));
}

let warningsRouted = false;

/**
 * Routes the runtime's process warnings (`TimeoutOverflowWarning`, deprecations, anything given
 * to `process.emitWarning`) into the structured log as `WARN diss.runtime` lines instead of the
 * runtime's own `(node:PID) ...` line on stderr. In Deno 2 those warnings are `process` events
 * (not `globalThis` events) printed by a default `warning` listener, which this replaces.
 * Idempotent; {@link setupLogging} calls it.
 */
export function routeRuntimeWarnings(): void {
  if (warningsRouted) return;
  warningsRouted = true;
  process.removeAllListeners("warning");
  process.on("warning", (warning: Error & { code?: string }) => {
    getLog("runtime").warning(warning.message, {
      warning: warning.name,
      ...(warning.code === undefined ? {} : { code: warning.code }),
    });
  });
}

let uncaughtRouted = false;

/**
 * For the program's entry point: an uncaught exception or unhandled promise rejection is logged
 * as one `FATAL diss.runtime` line (with the stack) instead of the runtime's own multi-line
 * report, and the process then exits with code 1 as it would have anyway (so a service manager
 * restarts it). Idempotent. Not for tests: `deno test` reports such errors itself.
 */
export function routeUncaughtErrors(): void {
  if (uncaughtRouted) return;
  uncaughtRouted = true;
  const fail = (kind: string, error: unknown) => {
    getLog("runtime").fatal(kind, {
      error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
      ...(error instanceof Error && error.stack !== undefined ? { stack: error.stack } : {}),
    });
    Deno.exit(1);
  };
  globalThis.addEventListener("error", (event) => {
    event.preventDefault();
    fail("Uncaught exception", event.error);
  });
  globalThis.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    fail("Unhandled promise rejection", event.reason);
  });
}

/**
 * Configures logging for the whole process (call once at start; again to change). Runtime
 * warnings go to the same log ({@link routeRuntimeWarnings}).
 */
export function setupLogging(options: LoggingOptions = {}): void {
  const write = options.write ?? writeStderr;
  routeRuntimeWarnings();
  resetSync();
  configureSync({
    sinks: { main: (record: LogRecord) => write(formatLogRecord(record)) },
    loggers: [
      { category: ["diss"], lowestLevel: options.level ?? "info", sinks: ["main"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["main"] },
    ],
  });
}
