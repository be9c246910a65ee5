/**
 * SIMPLON REST client for the EIGER2 detector control unit (DCU), over `fetch`.
 *
 * Every request has a timeout (`timeoutSignal`, any length); idempotent requests (GET, config PUT) are
 * retried a bounded number of times on transient failures (network errors, timeouts, HTTP 502,
 * 503, 504). Commands are never retried: `arm` twice would open two series. Every failure is a
 * {@link SimplonError} whose message names the method, the key and the HTTP status.
 *
 * @module
 */

import { errorMessage } from "../../core/errors.ts";
import { sleep, systemClock, timeoutSignal } from "../../core/clock.ts";

/** SIMPLON subsystems. */
export type Subsystem = "detector" | "stream" | "monitor" | "filewriter" | "system";

/** A SIMPLON parameter value. */
export type SimplonValue = boolean | number | string | null | SimplonValue[];

/** The description object a GET on a parameter returns (only `value` is guaranteed). */
export interface SimplonParameter {
  value: SimplonValue;
  value_type?: string;
  min?: number;
  max?: number;
  allowed_values?: SimplonValue[];
  unit?: string;
  access_mode?: string;
}

/** A failed SIMPLON request. */
export class SimplonError extends Error {
  /** `detector/config/count_time`-style path of the request (without host and version). */
  readonly key: string;
  /** HTTP status, or undefined for network errors and timeouts. */
  readonly status?: number;
  /** True when the request timed out. */
  readonly timedOut: boolean;

  /** Creates an error for `key`; see the fields. */
  constructor(message: string, key: string, status?: number, timedOut = false) {
    super(message);
    this.name = "SimplonError";
    this.key = key;
    this.status = status;
    this.timedOut = timedOut;
  }
}

/** Options of {@link SimplonClient}. */
export interface SimplonClientOptions {
  /** DCU host. */
  host: string;
  /** HTTP port. */
  port: number;
  /** API version for URLs; undefined until {@link SimplonClient.discoverVersion} ran. */
  version?: string;
  /** Default timeout per attempt in milliseconds. */
  timeoutMs: number;
  /** Extra attempts after a transient failure of an idempotent request (default 2). */
  retries?: number;
  /** Pause before a retry in milliseconds (default 200, doubled per retry). */
  retryDelayMs?: number;
  /** Aborts every request (shutdown). */
  signal?: AbortSignal;
}

/** Per-request options. */
export interface RequestOptions {
  /** Timeout of this request in milliseconds (overrides the default). */
  timeoutMs?: number;
  /** Aborts this request early (e.g. a cancelled acquisition). */
  signal?: AbortSignal;
}

const TRANSIENT_STATUS = new Set([502, 503, 504]);
const BODY_EXCERPT = 120;

/** Reads the sequence id from an arm/disarm/abort/cancel reply (`sequence id` or variants). */
export function sequenceIdOf(reply: unknown): number | undefined {
  if (typeof reply !== "object" || reply === null) return undefined;
  const r = reply as Record<string, unknown>;
  for (const key of ["sequence id", "sequence_id", "series id", "series_id"]) {
    const v = r[key];
    if (typeof v === "number" && Number.isInteger(v) && v >= 0) return v;
    if (
      typeof v === "object" && v !== null && typeof (v as { value?: unknown }).value === "number"
    ) {
      return (v as { value: number }).value;
    }
  }
  return undefined;
}

/** A client for one DCU. */
export class SimplonClient {
  #opts: SimplonClientOptions;
  #version: string | undefined;

  /** Creates a client; no request is sent yet. */
  constructor(options: SimplonClientOptions) {
    this.#opts = options;
    this.#version = options.version;
  }

  /** API version used in URLs, or undefined before discovery. */
  get version(): string | undefined {
    return this.#version;
  }

  /**
   * Forgets a discovered API version so that the next {@link SimplonClient.discoverVersion} asks
   * the DCU again (after a restart it may run other firmware); a version given explicitly stays.
   */
  forgetVersion(): void {
    this.#version = this.#opts.version;
  }

  /** Base URL `http://host:port`. */
  get baseUrl(): string {
    const host = this.#opts.host.includes(":") ? `[${this.#opts.host}]` : this.#opts.host;
    return `http://${host}:${this.#opts.port}`;
  }

  /**
   * Asks the DCU for its detector API version (`GET /detector/api/version/`) and uses it from then
   * on, unless a version was given explicitly. Returns the version in use.
   */
  async discoverVersion(options: RequestOptions = {}): Promise<string> {
    if (this.#version !== undefined) return this.#version;
    const reply = await this.#request("GET", "/detector/api/version/", "detector/version", {
      ...options,
      idempotent: true,
    });
    const value = (reply as SimplonParameter | undefined)?.value;
    if (typeof value !== "string" || !/^\d+\.\d+\.\d+$/.test(value)) {
      throw new SimplonError(
        `SIMPLON GET detector/version: unexpected reply ${JSON.stringify(reply)}`,
        "detector/version",
      );
    }
    this.#version = value;
    return value;
  }

  #path(subsystem: Subsystem, task: string, key?: string): string {
    if (this.#version === undefined) {
      throw new Error("SIMPLON API version unknown: call discoverVersion() first");
    }
    return `/${subsystem}/api/${this.#version}/${task}` + (key === undefined ? "" : `/${key}`);
  }

  /** GETs a parameter description (`config` or `status` task). */
  async get(
    subsystem: Subsystem,
    task: "config" | "status",
    key: string,
    options: RequestOptions = {},
  ): Promise<SimplonParameter> {
    const name = `${subsystem}/${task}/${key}`;
    const reply = await this.#request("GET", this.#path(subsystem, task, key), name, {
      ...options,
      idempotent: true,
    });
    if (typeof reply !== "object" || reply === null || !("value" in reply)) {
      throw new SimplonError(
        `SIMPLON GET ${name}: reply has no value: ${JSON.stringify(reply)?.slice(0, BODY_EXCERPT)}`,
        name,
      );
    }
    return reply as SimplonParameter;
  }

  /** GETs only the `value` of a parameter. */
  async getValue(
    subsystem: Subsystem,
    task: "config" | "status",
    key: string,
    options: RequestOptions = {},
  ): Promise<SimplonValue> {
    return (await this.get(subsystem, task, key, options)).value;
  }

  /** PUTs one config value (`{"value": v}`); returns the list of changed keys. */
  async put(
    subsystem: Subsystem,
    key: string,
    value: SimplonValue,
    options: RequestOptions = {},
  ): Promise<string[]> {
    const name = `${subsystem}/config/${key}`;
    const reply = await this.#request("PUT", this.#path(subsystem, "config", key), name, {
      ...options,
      body: { value },
      idempotent: true,
    });
    return Array.isArray(reply) ? reply.filter((k): k is string => typeof k === "string") : [];
  }

  /** Sends a command (`PUT .../command/<name>`), never retried; returns the parsed reply. */
  async command(
    name: string,
    options: RequestOptions & { subsystem?: Subsystem; value?: SimplonValue } = {},
  ): Promise<unknown> {
    const subsystem = options.subsystem ?? "detector";
    const key = `${subsystem}/command/${name}`;
    return await this.#request("PUT", this.#path(subsystem, "command", name), key, {
      ...options,
      body: options.value === undefined ? {} : { value: options.value },
      idempotent: false,
    });
  }

  async #request(
    method: "GET" | "PUT",
    path: string,
    key: string,
    options: RequestOptions & { body?: unknown; idempotent: boolean },
  ): Promise<unknown> {
    const attempts = 1 + (options.idempotent ? (this.#opts.retries ?? 2) : 0);
    let delay = this.#opts.retryDelayMs ?? 200;
    let lastError: SimplonError | undefined;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        return await this.#attempt(method, path, key, options);
      } catch (error) {
        if (!(error instanceof SimplonError)) throw error;
        lastError = error;
        const transient = error.status === undefined || TRANSIENT_STATUS.has(error.status);
        if (!transient || attempt === attempts) break;
        await sleep(systemClock, delay, this.#signals(options.signal));
        delay *= 2;
      }
    }
    if (attempts > 1 && lastError !== undefined) {
      throw new SimplonError(
        `${lastError.message} (after ${attempts} attempts)`,
        lastError.key,
        lastError.status,
        lastError.timedOut,
      );
    }
    throw lastError;
  }

  #signals(extra?: AbortSignal): AbortSignal | undefined {
    const list = [this.#opts.signal, extra].filter((s): s is AbortSignal => s !== undefined);
    return list.length === 0 ? undefined : AbortSignal.any(list);
  }

  async #attempt(
    method: "GET" | "PUT",
    path: string,
    key: string,
    options: RequestOptions & { body?: unknown },
  ): Promise<unknown> {
    const timeoutMs = options.timeoutMs ?? this.#opts.timeoutMs;
    // Not AbortSignal.timeout: a trigger of a long count_time may wait beyond its 2^31-1 ms.
    const { signal: timeout, clear } = timeoutSignal(timeoutMs);
    const outer = this.#signals(options.signal);
    const signal = outer === undefined ? timeout : AbortSignal.any([timeout, outer]);
    const headers: Record<string, string> = { "Accept": "application/json" };
    let body: string | undefined;
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.body);
    }
    let response: Response;
    let text: string;
    try {
      response = await fetch(this.baseUrl + path, { method, headers, body, signal });
      text = await response.text();
    } catch (error) {
      if (outer?.aborted) throw outer.reason;
      if (timeout.aborted) {
        throw new SimplonError(
          `SIMPLON ${method} ${key} timed out after ${timeoutMs / 1000} s`,
          key,
          undefined,
          true,
        );
      }
      const reason = errorMessage(error);
      throw new SimplonError(`SIMPLON ${method} ${key} failed: ${reason}`, key);
    } finally {
      clear();
    }
    if (response.status < 200 || response.status > 299) {
      const excerpt = text.trim().replace(/\s+/g, " ").slice(0, BODY_EXCERPT);
      throw new SimplonError(
        `SIMPLON ${method} ${key}: HTTP ${response.status}` + (excerpt ? ` (${excerpt})` : ""),
        key,
        response.status,
      );
    }
    if (text.trim() === "") return undefined;
    try {
      return JSON.parse(text);
    } catch {
      throw new SimplonError(
        `SIMPLON ${method} ${key}: reply is not JSON: ${text.slice(0, BODY_EXCERPT)}`,
        key,
        response.status,
      );
    }
  }
}
