/**
 * systemd readiness and watchdog notifications (`sd_notify`), for `Type=notify` services.
 *
 * Sends `KEY=VALUE` lines as one datagram to the unix socket named by `NOTIFY_SOCKET`. Without that
 * variable (not started by systemd) every call is a no-op. Abstract socket names (`@...`) are not
 * supported by Deno; they are reported once and ignored.
 *
 * @module
 */

import { getLog } from "../core/log.ts";

/** Sends notifications to systemd; `close()` releases the sending socket. */
export interface SdNotifier {
  /** True when a notify socket is configured and usable. */
  readonly enabled: boolean;
  /** Sends one notification, e.g. `{ READY: "1", STATUS: "serving" }`. Never throws. */
  notify(fields: Record<string, string>): Promise<void>;
  /** Watchdog interval in ms requested by systemd (`WATCHDOG_USEC`), or undefined. */
  readonly watchdogMs: number | undefined;
  /** Closes the sending socket. */
  close(): void;
}

/** Formats notification fields as systemd expects: `KEY=VALUE` lines. */
export function formatNotification(fields: Record<string, string>): string {
  return Object.entries(fields).map(([k, v]) => `${k}=${v.replaceAll("\n", " ")}`).join("\n");
}

/** Watchdog interval in ms from the environment, halved as systemd recommends. */
export function watchdogIntervalMs(
  env: Readonly<Record<string, string | undefined>>,
  pid: number = Deno.pid,
): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isFinite(usec) || usec <= 0) return undefined;
  const forPid = env.WATCHDOG_PID;
  if (forPid !== undefined && forPid !== "" && Number(forPid) !== pid) return undefined;
  return Math.max(1, Math.floor(usec / 2000));
}

const log = getLog("systemd");

/** Creates a notifier for `env.NOTIFY_SOCKET` (a no-op notifier when unset or unsupported). */
export function createSdNotifier(
  env: Readonly<Record<string, string | undefined>> = Deno.env.toObject(),
): SdNotifier {
  const target = env.NOTIFY_SOCKET;
  const watchdogMs = watchdogIntervalMs(env);
  const disabled: SdNotifier = {
    enabled: false,
    watchdogMs: undefined,
    notify: () => Promise.resolve(),
    close: () => {},
  };
  if (target === undefined || target === "") return disabled;
  if (target.startsWith("@")) {
    log.warning("Abstract NOTIFY_SOCKET is not supported; not notifying systemd", {
      socket: target,
    });
    return disabled;
  }
  let sock: Deno.DatagramConn | undefined;
  let sockPath: string | undefined;
  const encoder = new TextEncoder();
  return {
    enabled: true,
    watchdogMs,
    async notify(fields) {
      try {
        if (sock === undefined) {
          sockPath = Deno.makeTempFileSync({ prefix: "diss-ioc-notify-" });
          Deno.removeSync(sockPath);
          sock = Deno.listenDatagram({ transport: "unixpacket", path: sockPath });
        }
        await sock.send(encoder.encode(formatNotification(fields)), {
          transport: "unixpacket",
          path: target,
        });
      } catch (err) {
        log.warning("sd_notify failed", { socket: target, error: err });
      }
    },
    close() {
      try {
        sock?.close();
        if (sockPath !== undefined) Deno.removeSync(sockPath);
      } catch {
        // already closed or removed
      }
      sock = undefined;
    },
  };
}
