/**
 * Settings of the GigE Vision backend, parsed from `GIGE_*` environment variables. Every value is
 * checked here, so a bad setting stops the IOC at start with a message naming the variable.
 *
 * @module
 */

import { type Env, envNumber, envText } from "../../core/env.ts";
import { GVCP_PORT } from "./gvcp.ts";

/** Trigger source of frames. */
export type GigeTrigger = "internal" | "external";

/** Parsed, validated backend settings. */
export interface GigeSettings {
  /** Camera address (`GIGE_DEVICE_HOST`, `host` or `host:port`); undefined → broadcast discovery. */
  host?: string;
  /** Camera GVCP port (default 3956). */
  port: number;
  /** Host interface facing the camera (`GIGE_INTERFACE`): an IPv4 address or an interface name. */
  interface?: string;
  /** Features applied in order at initialization (`GIGE_FEATURES`, `Name=Value;...`). */
  features: [string, string][];
  /** Frames per acquisition (`GIGE_NUM_IMAGES`, default 1). */
  numImages: number;
  /** `internal` (free-run/software) or `external` (hardware trigger) (`GIGE_TRIGGER`). */
  trigger: GigeTrigger;
  /**
   * Stream packet size in bytes (`GIGE_PACKET_SIZE`): the largest size negotiation tries, and the
   * size used when the camera sends no test packets; undefined: up to 9000, else the camera's.
   */
  packetSize?: number;
  /** Wait for each test packet of the packet size negotiation, ms (`GIGE_TEST_PACKET_TIMEOUT`). */
  testPacketTimeoutMs: number;
  /** Seconds to wait for a frame beyond the exposure (`GIGE_IMAGE_OVERDUE`, default 5; 0 = never). */
  imageOverdue: number;
  /** Time without progress before an incomplete frame is given up, ms (`GIGE_RESEND_WINDOW`). */
  resendWindowMs: number;
  /** GVCP acknowledge timeout per attempt, ms (`GIGE_GVCP_TIMEOUT`, default 500). */
  gvcpTimeoutMs: number;
}

/** Splits `Name=Value;Name=Value` (empty items ignored); throws naming a malformed item. */
export function parseFeatureList(raw: string): [string, string][] {
  const out: [string, string][] = [];
  for (const item of raw.split(";")) {
    if (item.trim() === "") continue;
    const eq = item.indexOf("=");
    const name = eq < 0 ? "" : item.slice(0, eq).trim();
    if (eq < 0 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new Error(`GIGE_FEATURES item ${JSON.stringify(item.trim())} is not Name=Value`);
    }
    out.push([name, item.slice(eq + 1).trim()]);
  }
  return out;
}

/** Parses the `GIGE_*` variables of `env`. */
export function parseGigeSettings(env: Env): GigeSettings {
  const hostRaw = envText(env, "GIGE_DEVICE_HOST");
  const iface = envText(env, "GIGE_INTERFACE");
  let host: string | undefined;
  let port = GVCP_PORT;
  if (hostRaw !== undefined) {
    const m = /^([^:\s]+)(?::(\d{1,5}))?$/.exec(hostRaw);
    if (m === null || (m[2] !== undefined && (Number(m[2]) < 1 || Number(m[2]) > 65535))) {
      throw new Error(
        `GIGE_DEVICE_HOST=${JSON.stringify(hostRaw)} is invalid: expected host[:port]`,
      );
    }
    host = m[1];
    if (m[2] !== undefined) port = Number(m[2]);
  } else if (iface === undefined) {
    throw new Error(
      "GIGE_DEVICE_HOST is required (the camera's IPv4 address), unless GIGE_INTERFACE names " +
        "the interface to discover a camera on by broadcast",
    );
  }
  const trigger = (envText(env, "GIGE_TRIGGER") ?? "internal").toLowerCase();
  if (trigger !== "internal" && trigger !== "external") {
    throw new Error(
      `GIGE_TRIGGER=${JSON.stringify(env.GIGE_TRIGGER)} is invalid: expected internal or external`,
    );
  }
  return {
    host,
    port,
    interface: iface,
    features: parseFeatureList(envText(env, "GIGE_FEATURES") ?? ""),
    numImages: envNumber(
      env,
      "GIGE_NUM_IMAGES",
      (n) => Number.isInteger(n) && n >= 1 && n <= 1_000_000,
      "an integer 1..1000000",
    ) ?? 1,
    trigger,
    packetSize: envNumber(
      env,
      "GIGE_PACKET_SIZE",
      (n) => Number.isInteger(n) && n >= 576 && n <= 16404 && n % 4 === 0,
      "a multiple of 4 in 576..16404 (bytes per IP datagram)",
    ),
    testPacketTimeoutMs: envNumber(
      env,
      "GIGE_TEST_PACKET_TIMEOUT",
      (n) => n >= 5 && n <= 5000,
      "milliseconds 5..5000",
    ) ?? 50,
    imageOverdue: envNumber(env, "GIGE_IMAGE_OVERDUE", (n) => n >= 0, "seconds >= 0") ?? 5,
    resendWindowMs: envNumber(
      env,
      "GIGE_RESEND_WINDOW",
      (n) => n >= 5 && n <= 10_000,
      "milliseconds 5..10000",
    ) ?? 100,
    gvcpTimeoutMs: envNumber(
      env,
      "GIGE_GVCP_TIMEOUT",
      (n) => n >= 10 && n <= 10_000,
      "milliseconds 10..10000",
    ) ?? 500,
  };
}
