/**
 * Command line and environment of the IOC: parsing and validation into {@link IocOptions}.
 * Flags override environment variables. Every problem becomes a {@link ConfigError} with a one-line
 * message, reported before anything starts.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { LOG_LEVELS, type LogLevel } from "../core/log.ts";
import { errorMessage } from "../core/errors.ts";

/** A bad flag or environment variable (message is one line, ready for stderr). */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** PV prefix used when neither `--prefix` nor `DISS_EPICS_PREFIX` is given. */
export const DEFAULT_PREFIX = "DISS:";
/** Default seconds allowed beyond the duration for an acquisition to finish (see controller). */
export const DEFAULT_OVERDUE = 5;

/** How uint32 images are served: exact as DOUBLE, or bit-for-bit as LONG (see README). */
export type Uint32Transport = "double" | "long";

/** Everything `diss-ioc` needs from its command line and environment. */
export interface IocOptions {
  /** Backend: a built-in short name (`sim`) or `module:Class`. */
  backend: string;
  /** PV prefix (usually with trailing colon). */
  prefix: string;
  /** Whether the prefix was given (false: {@link DEFAULT_PREFIX}). */
  prefixGiven: boolean;
  /** Auto-acquire duration in seconds; undefined = off. */
  autoAcquire: number | undefined;
  /**
   * Seconds beyond the duration before an acquisition times out; 0 = never; undefined = the
   * backend's own allowance plus a margin, or {@link DEFAULT_OVERDUE} (decided by the controller).
   */
  overdue: number | undefined;
  /**
   * Seconds between reads of the prepared series stacks while idle (`DISS_STACK_REFRESH`; 0 = off;
   * undefined = the controller's default, 5 s).
   */
  stackRefresh: number | undefined;
  /** CA type of uint32 image PVs: `double` (exact values) or `long` (same bits, half the bytes). */
  uint32As: Uint32Transport;
  /** Serve the PVs over pvAccess too (`--pva on|off`, `DISS_PVA`; default on). */
  pva: boolean;
  /**
   * Forward unicast PVA searches to the other PVA servers on this host through the loopback
   * multicast group, and answer theirs (`--pva-forward on|off`, `DISS_PVA_FORWARD`; default on).
   */
  pvaForward: boolean;
  /** Lowest log level written. */
  logLevel: LogLevel;
  /** Who may write (`--write-hosts`); undefined = every client. */
  writeHosts: WriteHostEntry[] | undefined;
  /** Print the PV names and exit. */
  listPvs: boolean;
  /** Print usage and exit. */
  help: boolean;
  /** Print the version and exit. */
  version: boolean;
}

/** Usage text of `diss-ioc`. */
export const USAGE = `Usage: diss-ioc [options]                 run the IOC
       diss-ioc view [options]            show live images in the terminal (view --help)
       diss-ioc eiger-sim [options]       run an EIGER2 detector simulator (eiger-sim --help)

Options (each overrides its environment variable):
  --backend NAME|module:Class  device backend: sim, eiger, harp (alias miniquant),
                               gige (alias pylon), or your own class  [DISS_DEVICE_BACKEND]
  --prefix P                   PV prefix, e.g. "DISS:det:" (default "${DEFAULT_PREFIX}")  [DISS_EPICS_PREFIX]
  --auto-acquire S             acquire S seconds whenever READY; no/0 = off [DISS_AUTO_ACQUIRE]
  --overdue S                  seconds beyond the duration before an acquisition
                               times out; 0 = never (default: the backend's own
                               allowance + 5, else ${DEFAULT_OVERDUE})               [DISS_ACQUIRE_OVERDUE]
  --uint32-as T                uint32 images as "double" (exact, default) or "long"
                               (same bits: 2^32-1 reads as -1; half the bytes)  [DISS_UINT32_AS]
  --pva on|off                 also serve every PV over pvAccess (default on)  [DISS_PVA]
  --pva-forward on|off         forward unicast PVA searches to the other PVA servers
                               on this host (multicast 224.0.0.128 on loopback) and
                               answer theirs, as EPICS servers do (default on)  [DISS_PVA_FORWARD]
  --log-level L                ${LOG_LEVELS.join("|")} (default info)  [DISS_LOG_LEVEL]
  --write-hosts LIST           only these clients may write: host names, IPv4
                               addresses or user@host, comma-separated; others
                               get read-only access (default: everyone) [DISS_WRITE_HOSTS]
  --list-pvs                   initialize the backend, print the PV names, exit
  --help                       print this help
  --version                    print the version
`;

/** One entry of `--write-hosts`: a host name or IPv4 address, optionally with a user name. */
export interface WriteHostEntry {
  /** User name the client announces (CA CLIENT_NAME); undefined = any user. */
  user?: string;
  /** Host name (compared with the client's CA HOST_NAME) or IPv4 address (its peer address). */
  host: string;
}

/**
 * Parses a write-host list: entries `host`, `address` or `user@host`, separated by commas and/or
 * white space. An empty list is refused (it would make every PV read-only by accident).
 */
export function parseWriteHosts(text: string, source: string): WriteHostEntry[] {
  const entries = text.split(/[\s,]+/).filter((e) => e !== "");
  if (entries.length === 0) {
    throw new ConfigError(
      `${source}: empty list (name hosts or user@host; unset it to let every client write)`,
    );
  }
  return entries.map((entry) => {
    const at = entry.lastIndexOf("@");
    const user = at >= 0 ? entry.slice(0, at) : undefined;
    const host = at >= 0 ? entry.slice(at + 1) : entry;
    if (user === "" || host === "" || !/^[A-Za-z0-9._-]+$/.test(host)) {
      throw new ConfigError(
        `${source}: ${JSON.stringify(entry)} is not a host name, IPv4 address or user@host`,
      );
    }
    return user === undefined ? { host } : { user, host };
  });
}

/** Parses an auto-acquire setting: `no/nope/false/off/0/""` → off, `yes/true/on` → 1 s, else seconds > 0. */
export function parseAutoAcquire(text: string, source: string): number | undefined {
  const t = text.trim().toLowerCase();
  if (["", "no", "nope", "false", "off", "0"].includes(t)) return undefined;
  if (["yes", "true", "on"].includes(t)) return 1;
  const v = parseSeconds(text, source);
  return v === 0 ? undefined : v;
}

/** Parses a non-negative finite number of seconds; the error says what is wrong with the value. */
export function parseSeconds(text: string, source: string): number {
  const t = text.trim();
  const v = t === "" ? NaN : Number(t);
  const quoted = `${source}=${JSON.stringify(text)}`;
  if (v < 0) throw new ConfigError(`${quoted}: must not be negative (a number of seconds >= 0)`);
  if (v === Infinity) throw new ConfigError(`${quoted}: must be finite (a number of seconds >= 0)`);
  if (!Number.isFinite(v)) throw new ConfigError(`${quoted}: expected a number of seconds >= 0`);
  return v;
}

/**
 * Joins a string option and a following argument that starts with `-` but is no option
 * (`--overdue -5` → `--overdue=-5`), so that the value is checked and reported by its own
 * parser instead of `parseArgs`' "argument is ambiguous".
 */
export function joinDashValues(
  argv: readonly string[],
  stringOptions: readonly string[],
  known: readonly string[],
): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const next = argv[i + 1];
    const isOption = (a: string) =>
      a === "--" || known.some((k) => a === `--${k}` || a.startsWith(`--${k}=`)) ||
      /^-[a-zA-Z]$/.test(a);
    if (
      stringOptions.some((o) => arg === `--${o}`) && next !== undefined &&
      next.startsWith("-") && !isOption(next)
    ) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

/** Checks a PV prefix: non-empty, printable ASCII, no spaces or quotes, at most 60 characters. */
export function checkPrefix(prefix: string, source: string): string {
  if (prefix === "") throw new ConfigError(`${source}: the PV prefix must not be empty`);
  if (!/^[\x21-\x7e]+$/.test(prefix) || /["'\\]/.test(prefix)) {
    throw new ConfigError(
      `${source}=${JSON.stringify(prefix)}: the PV prefix may hold only printable ASCII ` +
        `without spaces or quotes`,
    );
  }
  if (prefix.length > 60) throw new ConfigError(`${source}: the PV prefix is longer than 60`);
  return prefix;
}

/** An on/off switch from its flag, else its variable, else on. */
function onOff(
  flag: string | undefined,
  flagName: string,
  variable: string | undefined,
  variableName: string,
): boolean {
  const [text, source] = flag !== undefined ? [flag, flagName] : [variable ?? "on", variableName];
  const word = text.trim().toLowerCase();
  if (!["on", "off", "yes", "no", "true", "false", "1", "0"].includes(word)) {
    throw new ConfigError(`${source}=${JSON.stringify(text)}: expected on or off`);
  }
  return ["on", "yes", "true", "1"].includes(word);
}

/** Parses flags and environment; throws {@link ConfigError} on any problem. */
export function parseIocOptions(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): IocOptions {
  let values;
  const options = {
    backend: { type: "string" },
    prefix: { type: "string" },
    "auto-acquire": { type: "string" },
    overdue: { type: "string" },
    "uint32-as": { type: "string" },
    "log-level": { type: "string" },
    pva: { type: "string" },
    "pva-forward": { type: "string" },
    "write-hosts": { type: "string" },
    "list-pvs": { type: "boolean" },
    help: { type: "boolean", short: "h" },
    version: { type: "boolean" },
  } as const;
  const names = Object.keys(options);
  const stringOptions = names.filter((n) => options[n as keyof typeof options].type === "string");
  try {
    ({ values } = parseArgs({
      args: joinDashValues(argv, stringOptions, names),
      strict: true,
      allowPositionals: false,
      options,
    }));
  } catch (err) {
    const text = errorMessage(err);
    throw new ConfigError(`${text.replace(/\s*\n\s*/g, " ")} (see --help)`);
  }
  const help = values.help ?? false;
  const version = values.version ?? false;
  const pick = (flag: string | undefined, name: string): [string | undefined, string] =>
    flag !== undefined ? [flag, `--${name}`] : [undefined, ""];

  let [backend, backendSource] = pick(values.backend, "backend");
  if (backend === undefined && env.DISS_DEVICE_BACKEND !== undefined) {
    [backend, backendSource] = [env.DISS_DEVICE_BACKEND, "DISS_DEVICE_BACKEND"];
  }
  backend = backend?.trim();
  if ((backend === undefined || backend === "") && !help && !version) {
    throw new ConfigError(
      backend === undefined
        ? "no backend given: use --backend NAME or DISS_DEVICE_BACKEND (e.g. sim)"
        : `${backendSource}: the backend must not be empty`,
    );
  }

  let prefix = DEFAULT_PREFIX;
  let prefixGiven = false;
  if (values.prefix !== undefined) {
    prefix = checkPrefix(values.prefix, "--prefix");
    prefixGiven = true;
  } else if (env.DISS_EPICS_PREFIX !== undefined) {
    prefix = checkPrefix(env.DISS_EPICS_PREFIX, "DISS_EPICS_PREFIX");
    prefixGiven = true;
  }

  const autoAcquire = values["auto-acquire"] !== undefined
    ? parseAutoAcquire(values["auto-acquire"], "--auto-acquire")
    : env.DISS_AUTO_ACQUIRE !== undefined
    ? parseAutoAcquire(env.DISS_AUTO_ACQUIRE, "DISS_AUTO_ACQUIRE")
    : undefined;

  const overdue = values.overdue !== undefined
    ? parseSeconds(values.overdue, "--overdue")
    : env.DISS_ACQUIRE_OVERDUE !== undefined
    ? parseSeconds(env.DISS_ACQUIRE_OVERDUE, "DISS_ACQUIRE_OVERDUE")
    : undefined;

  const stackRefresh = env.DISS_STACK_REFRESH !== undefined
    ? parseSeconds(env.DISS_STACK_REFRESH, "DISS_STACK_REFRESH")
    : undefined;

  const [u32Text, u32Source] = values["uint32-as"] !== undefined
    ? [values["uint32-as"], "--uint32-as"]
    : [env.DISS_UINT32_AS ?? "double", "DISS_UINT32_AS"];
  const uint32As = u32Text.trim().toLowerCase();
  if (uint32As !== "double" && uint32As !== "long") {
    throw new ConfigError(`${u32Source}=${JSON.stringify(u32Text)}: expected double or long`);
  }

  const pva = onOff(values.pva, "--pva", env.DISS_PVA, "DISS_PVA");
  const pvaForward = onOff(
    values["pva-forward"],
    "--pva-forward",
    env.DISS_PVA_FORWARD,
    "DISS_PVA_FORWARD",
  );

  const [levelText, levelSource] = values["log-level"] !== undefined
    ? [values["log-level"], "--log-level"]
    : [env.DISS_LOG_LEVEL ?? "info", "DISS_LOG_LEVEL"];
  const level = levelText.trim().toLowerCase() === "warn"
    ? "warning"
    : levelText.trim().toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new ConfigError(
      `${levelSource}=${JSON.stringify(levelText)}: expected one of ${LOG_LEVELS.join(", ")}`,
    );
  }

  const writeHosts = values["write-hosts"] !== undefined
    ? parseWriteHosts(values["write-hosts"], "--write-hosts")
    : env.DISS_WRITE_HOSTS !== undefined
    ? parseWriteHosts(env.DISS_WRITE_HOSTS, "DISS_WRITE_HOSTS")
    : undefined;

  return {
    backend: backend ?? "",
    writeHosts,
    prefix,
    prefixGiven,
    autoAcquire,
    overdue,
    stackRefresh,
    uint32As,
    pva,
    pvaForward,
    logLevel: level as LogLevel,
    listPvs: values["list-pvs"] ?? false,
    help,
    version,
  };
}
