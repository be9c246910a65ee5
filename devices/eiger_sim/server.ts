/**
 * HTTP side of the simulated DCU: SIMPLON REST (`/<subsystem>/api/<version>/<task>/<key>`),
 * version discovery, `keys` listings, and the test control endpoint under `/sim/control/`.
 *
 * Control endpoint (JSON bodies):
 * - `PUT /sim/control/gate` `{"measurements": n}`: external gate trains (extg), default 1
 * - `PUT /sim/control/trigger` `{"count": n}`: external trigger edges (exts/exte), default 1
 * - `PUT /sim/control/fault` one of
 *   `{"kind": "http", "key": "detector/config/count_time", "status": 500, "count"?: n}`,
 *   `{"kind": "delay", "key": "...", "ms": 2000}`, `{"kind": "drop-stream", "afterImages": 0}`,
 *   `{"kind": "missing-image", "imageId": 0}`, `{"kind": "corrupt-image", "imageId": 0}`,
 *   `{"kind": "wrong-series"}`, `{"kind": "state", "state": "error"}`,
 *   `{"kind": "leftovers", "at": "before-start" | "after-start" | "on-request", "images"?: n}`
 * - `PUT /sim/control/leftovers`: send held-back leftovers now (`on-request`)
 * - `PUT /sim/control/clear`: remove all faults
 * - `PUT /sim/control/auto-end` `{"value": false}`: extg series wait for a disarm
 * - `GET /sim/control/status`: state, series id, images sent
 *
 * @module
 */

import type { SimDetector } from "./detector.ts";
import { checkValue, describe, ParamError, type SimValue } from "./params.ts";
import { errorMessage } from "../../core/errors.ts";
import { sleep, systemClock } from "../../core/clock.ts";

const SUBSYSTEMS = new Set(["detector", "stream", "monitor", "filewriter", "system"]);
const API_RE = /^\/([a-z]+)\/api\/([^/]+)\/(config|status|command)(?:\/(.+?))?\/?$/;
const VERSION_RE = /^\/([a-z]+)\/api\/version\/?$/;

function text(status: number, body: string): Response {
  return new Response(body, { status, headers: { "Content-Type": "text/plain" } });
}

async function readJson(req: Request): Promise<unknown> {
  const body = (await req.text()).trim();
  if (body === "") return undefined;
  try {
    return JSON.parse(body);
  } catch {
    throw new ParamError(400, "request body is not JSON");
  }
}

/** Creates the request handler of a simulated DCU speaking API `version`. */
export function createSimHandler(
  detector: SimDetector,
  version = "1.8.0",
  shutdown: AbortSignal = new AbortController().signal,
): (req: Request) => Promise<Response> {
  return async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    try {
      if (url.pathname.startsWith("/sim/control/")) {
        return await control(detector, req, url.pathname.slice("/sim/control/".length));
      }
      const vm = VERSION_RE.exec(url.pathname);
      if (vm !== null && SUBSYSTEMS.has(vm[1]) && req.method === "GET") {
        return Response.json({ value: version, value_type: "string" });
      }
      const m = API_RE.exec(url.pathname);
      if (m === null || !SUBSYSTEMS.has(m[1])) {
        return text(404, `error during request: path error: unknown path: "${url.pathname}"`);
      }
      const [, subsystem, ver, task, key] = m;
      if (ver !== version) return text(404, `unsupported API version ${ver}`);
      const faultKey = `${subsystem}/${task}/${key ?? ""}`.replace(/\/$/, "");
      const wait = detector.faults.delays.get(faultKey);
      if (wait !== undefined) await sleep(systemClock, wait, shutdown).catch(() => {});
      const fault = detector.faults.http.get(faultKey);
      if (fault !== undefined) {
        if (fault.remaining !== undefined && --fault.remaining <= 0) {
          detector.faults.http.delete(faultKey);
        }
        return text(fault.status, `simulated fault on ${faultKey}`);
      }
      return await api(detector, req, subsystem, task, key);
    } catch (error) {
      if (error instanceof ParamError) return text(error.status, error.message);
      return text(500, errorMessage(error));
    }
  };
}

async function api(
  detector: SimDetector,
  req: Request,
  subsystem: string,
  task: string,
  key: string | undefined,
): Promise<Response> {
  if (task === "command") {
    if (req.method !== "PUT" || key === undefined) return text(405, "commands need PUT");
    const body = await readJson(req);
    const value = typeof body === "object" && body !== null && "value" in body
      ? (body as { value: SimValue }).value
      : undefined;
    const reply = await detector.command(subsystem, key, value);
    return Response.json(reply);
  }
  const store = detector.params.get(`${subsystem}/${task}`);
  if (req.method === "GET") {
    if (key === "keys") {
      if (store === undefined) return Response.json([]);
      const available = [...store.keys()].filter((k) => detector.available(subsystem, task, k));
      return Response.json(available);
    }
    const param = key === undefined ? undefined : store?.get(key);
    if (param === undefined || !detector.available(subsystem, task, key!)) {
      return text(404, `Parameter ${key} does not exist`);
    }
    if (subsystem === "detector" && task === "status" && key === "time") {
      param.value = new Date().toISOString();
    }
    return Response.json(describe(param, task === "status"));
  }
  if (req.method !== "PUT" || task !== "config") return text(405, `${req.method} not allowed`);
  const body = await readJson(req);
  let writes: [string, unknown][];
  if (key !== undefined) {
    if (typeof body !== "object" || body === null || !("value" in body)) {
      throw new ParamError(400, `body for ${key} must be {"value": ...}`);
    }
    writes = [[key, (body as { value: unknown }).value]];
  } else {
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      throw new ParamError(400, "collection PUT needs an object of {key: {value}}");
    }
    writes = Object.entries(body).map(([k, v]) => {
      if (typeof v !== "object" || v === null || !("value" in v)) {
        throw new ParamError(400, `body for ${k} must be {"value": ...}`);
      }
      return [k, (v as { value: unknown }).value];
    });
  }
  const changed = new Set<string>();
  for (const [k, raw] of writes) {
    const param = store?.get(k);
    if (param === undefined || !detector.available(subsystem, task, k)) {
      throw new ParamError(404, `Parameter ${k} does not exist`);
    }
    const value = checkValue(k, param, raw);
    for (const c of detector.write(subsystem, k, value)) changed.add(c);
  }
  return Response.json([...changed].sort());
}

async function control(detector: SimDetector, req: Request, action: string): Promise<Response> {
  if (action === "status" && req.method === "GET") {
    return Response.json({
      state: detector.state,
      seriesId: detector.seriesId,
      imagesSent: detector.imagesSent,
      autoEnd: detector.autoEnd,
    });
  }
  if (req.method !== "PUT") return text(405, "control actions need PUT");
  const body = (await readJson(req) ?? {}) as Record<string, unknown>;
  const f = detector.faults;
  switch (action) {
    case "gate": {
      const n = body.measurements ?? 1;
      if (typeof n !== "number" || !Number.isInteger(n) || n < 1) {
        throw new ParamError(400, "measurements must be an integer >= 1");
      }
      return Response.json({ images: detector.gate(n) });
    }
    case "trigger": {
      const n = body.count ?? 1;
      if (typeof n !== "number" || !Number.isInteger(n) || n < 1) {
        throw new ParamError(400, "count must be an integer >= 1");
      }
      return Response.json({ images: detector.externalTrigger(n) });
    }
    case "clear":
      f.http.clear();
      f.delays.clear();
      f.dropAfterImages = f.missingImage = f.corruptImage = undefined;
      f.wrongSeries = undefined;
      f.leftovers = undefined;
      return Response.json({});
    case "auto-end":
      detector.autoEnd = body.value !== false;
      return Response.json({ autoEnd: detector.autoEnd });
    case "fault":
      return Response.json(setFault(detector, body));
    case "leftovers":
      return Response.json({ messages: detector.sendLeftovers() });
    default:
      return text(404, `unknown control action ${action}`);
  }
}

function intField(body: Record<string, unknown>, name: string, min = 0): number {
  const v = body[name];
  if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
    throw new ParamError(400, `${name} must be an integer >= ${min}`);
  }
  return v;
}

function setFault(detector: SimDetector, body: Record<string, unknown>): unknown {
  const f = detector.faults;
  const key = typeof body.key === "string" ? body.key.replace(/^\/+|\/+$/g, "") : undefined;
  switch (body.kind) {
    case "http":
      if (key === undefined) throw new ParamError(400, "http fault needs a key");
      f.http.set(key, {
        status: intField(body, "status", 100),
        remaining: body.count === undefined ? undefined : intField(body, "count", 1),
      });
      break;
    case "delay":
      if (key === undefined) throw new ParamError(400, "delay fault needs a key");
      f.delays.set(key, intField(body, "ms"));
      break;
    case "drop-stream":
      f.dropAfterImages = body.afterImages === undefined ? 0 : intField(body, "afterImages");
      break;
    case "missing-image":
      f.missingImage = body.imageId === undefined ? 0 : intField(body, "imageId");
      break;
    case "corrupt-image":
      f.corruptImage = body.imageId === undefined ? 0 : intField(body, "imageId");
      break;
    case "wrong-series":
      f.wrongSeries = true;
      break;
    case "leftovers": {
      const at = body.at ?? "on-request";
      if (at !== "before-start" && at !== "after-start" && at !== "on-request") {
        throw new ParamError(400, "leftovers: at must be before-start, after-start or on-request");
      }
      f.leftovers = {
        at,
        images: body.images === undefined ? undefined : intField(body, "images"),
      };
      break;
    }
    case "state":
      if (typeof body.state !== "string") throw new ParamError(400, "state fault needs a state");
      detector.state = body.state;
      break;
    default:
      throw new ParamError(400, `unknown fault kind ${JSON.stringify(body.kind)}`);
  }
  return { ok: true };
}
