/**
 * The `diss-ioc` program: parses flags and environment, loads the backend, runs the controller
 * with its PV layer on a CA server, and shuts down cleanly on SIGINT/SIGTERM.
 *
 * @module
 */

import { ConfigError, type IocOptions, parseIocOptions, USAGE } from "./config.ts";
import { type Controller, createController } from "./controller.ts";
import { createIocPvs, pvSuffixes } from "./ioc_pvs.ts";
import { getLog, setupLogging } from "../core/log.ts";
import { versionString } from "./version.ts";
import { createSdNotifier } from "./sd_notify.ts";
import { formatWriteHosts, writeHostsAccess } from "./write_access.ts";
import { BackendError, resolveBackend } from "../devices/registry.ts";
import type { DeviceClass } from "../devices/contract.ts";
import { CaEnvError, defaultCodec, PvStore, readServerEnv, startCaServer } from "../ca/mod.ts";
import { errorMessage } from "../core/errors.ts";
import { BulkWriteGate } from "../core/write_gate.ts";
import { type PvaServer, startPvaServer } from "../pva/mod.ts";
import { LoopLagMonitor, threadCpuMs } from "../core/loop_lag.ts";
import { runtimePolling } from "../core/io_poll.ts";
import { HUGE_PAGES_TUNABLE, hugePagesStatus } from "../core/huge_pages.ts";
import { REEXEC_PARENT_ENV, restartWithRuntimePolling } from "./runtime_reexec.ts";

const log = getLog("ioc");

function printError(message: string): void {
  console.error(`diss-ioc: error: ${message}`);
}

/** Everything resolved before anything starts; undefined plus an exit code on bad input. */
async function prepare(
  argv: readonly string[],
  env: Record<string, string | undefined>,
): Promise<{ options: IocOptions; backend: DeviceClass } | number> {
  let options: IocOptions;
  try {
    options = parseIocOptions(argv, env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    printError(err.message);
    return 2;
  }
  if (options.help) {
    console.log(USAGE);
    return 0;
  }
  if (options.version) {
    console.log(`diss-ioc ${versionString()}`);
    return 0;
  }
  try {
    readServerEnv(env); // a bad EPICS_CAS_SERVER_PORT is refused before anything starts
  } catch (err) {
    if (!(err instanceof CaEnvError)) throw err;
    printError(err.message);
    return 2;
  }
  try {
    return { options, backend: await resolveBackend(options.backend) };
  } catch (err) {
    if (!(err instanceof BackendError)) throw err;
    printError(err.message);
    return 2;
  }
}

function makeController(
  options: IocOptions,
  backend: DeviceClass,
  env: Record<string, string | undefined>,
): Controller | number {
  try {
    return createController({
      device: (ctx) => new backend(ctx),
      env,
      autoAcquire: options.autoAcquire,
      overdue: options.overdue,
      stackRefreshMs: options.stackRefresh === undefined ? undefined : options.stackRefresh * 1000,
    });
  } catch (err) {
    printError(`backend ${options.backend}: ${errorMessage(err)}`);
    return 2;
  }
}

/** Waits until the controller leaves INIT/WARMUP (READY, ERROR or FAIL). */
function settled(controller: Controller): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (!["INIT", "WARMUP"].includes(controller.state)) {
        off();
        resolve();
      }
    };
    const off = controller.subscribe({ state: check });
    void controller.done.then(() => {
      off();
      resolve();
    });
    check();
  });
}

/** Runs the IOC with command line `argv`; resolves to the process exit code. */
export async function runIoc(
  argv: readonly string[],
  env: Record<string, string | undefined> = Deno.env.toObject(),
): Promise<number> {
  const prepared = await prepare(argv, env);
  if (typeof prepared === "number") return prepared;
  const { options, backend } = prepared;
  setupLogging({ level: options.logLevel });
  // Once, before anything starts: the runtime's socket polling (core/io_poll.ts).
  const restart = options.listPvs
    ? { kind: "none" as const }
    : await restartWithRuntimePolling(env);
  if (restart.kind === "exited") return restart.code;
  const controller = makeController(options, backend, env);
  if (typeof controller === "number") return controller;
  log.info("diss-ioc", { version: versionString(), backend: options.backend, pid: Deno.pid });

  if (options.listPvs) {
    await controller.start();
    await settled(controller);
    const config = controller.config;
    await controller.stop();
    if (config === undefined) {
      printError(`backend did not come up: ${controller.errors.join("; ") || controller.state}`);
      return 1;
    }
    for (const s of pvSuffixes(config)) console.log(`${options.prefix}${s}`);
    return 0;
  }

  if (!options.prefixGiven) {
    log.warning("No PV prefix given, using the default", { prefix: options.prefix });
  }
  if (options.autoAcquire !== undefined) {
    log.info("Auto-acquire", { duration: options.autoAcquire });
  }
  if (options.writeHosts !== undefined) {
    log.info("Write access only for", { write_hosts: formatWriteHosts(options.writeHosts) });
  }
  let server;
  // One PV store, served over CA and (unless --pva off) pvAccess.
  const store = new PvStore(defaultCodec);
  // --write-hosts: the same rule for CA and pvAccess clients.
  const writeAccess = options.writeHosts === undefined
    ? undefined
    : writeHostsAccess(options.writeHosts);
  // One bound on image bytes written per event-loop turn, across CA and pvAccess clients.
  const writeGate = new BulkWriteGate();
  try {
    // EPICS_CAS_SERVER_PORT=0 asks for OS-assigned ports (tests, several IOCs on one host).
    server = await startCaServer({ env, store, writeAccess, writeGate });
  } catch (err) {
    printError(`cannot start the CA server: ${errorMessage(err)}`);
    await controller.stop();
    return 1;
  }
  let pva: PvaServer | undefined;
  if (options.pva) {
    try {
      pva = await startPvaServer({
        env,
        store,
        writeAccess,
        writeGate,
        forwardSearches: options.pvaForward,
      });
    } catch (err) {
      printError(`cannot start the PVA server: ${errorMessage(err)}`);
      await server.close();
      await controller.stop();
      return 1;
    }
  }
  const pvs = createIocPvs({
    server,
    pva,
    controller,
    prefix: options.prefix,
    uint32As: options.uint32As,
  });
  // Before "IOC running": whoever waits for that line may stop the IOC at once.
  let stopSignal: string | undefined;
  const listeners: [Deno.Signal, () => void][] = [];
  const stopped = new Promise<void>((resolve) => {
    for (const name of ["SIGINT", "SIGTERM"] as const) {
      const listener = () => {
        if (stopSignal !== undefined) return;
        stopSignal = name;
        log.info("Shutting down", { signal: name });
        resolve();
      };
      listeners.push([name, listener]);
      Deno.addSignalListener(name, listener);
    }
  });

  log.info("IOC running", {
    prefix: options.prefix,
    tcp_port: server.tcpPort,
    udp_port: server.udpPort,
    pva_tcp_port: pva?.tcpPort ?? "off",
    pva_udp_port: pva?.udpPort ?? "off",
    pid: Deno.pid,
    // The child of a restart with the runtime's socket polling set (lib/runtime_reexec.ts).
    ...(env[REEXEC_PARENT_ENV] !== undefined ? { restarted_by: env[REEXEC_PARENT_ENV] } : {}),
  });
  // Read by the runtime at startup (core/io_poll.ts): with the defaults, clients wait up to
  // dozens of event-loop turns for their requests to be read while a fast stream keeps the IOC
  // busy. The program restarted itself with them above unless that was impossible or opted out.
  const polling = runtimePolling(env);
  if (!polling.ok) {
    log.warning("Sockets are polled only every few event-loop turns", {
      ...polling.intervals,
      recommended: 1,
      restart: restart.kind === "skipped" ? restart.reason : "none",
      effect: "CA/PVA requests may wait up to seconds while an image stream keeps the IOC busy",
    });
  }
  // Read by glibc at startup (core/huge_pages.ts): the launchers and the restart above set it.
  const hugePages = hugePagesStatus(env, Deno.build.os);
  if (hugePages !== undefined && !hugePages.ok) {
    log.warning("Large buffers use 4 KB pages", {
      GLIBC_TUNABLES: hugePages.tunables ?? "unset",
      recommended: HUGE_PAGES_TUNABLE,
      effect: "series stacks are slower to write and to touch again after idle seconds",
    });
  }

  // systemd (Type=notify): READY once we serve, STATUS per state, watchdog pings, STOPPING.
  // Notifications are sent one after the other (concurrent sends were seen to get lost).
  const systemd = createSdNotifier(env);
  let notified: Promise<void> = Promise.resolve();
  const notify = (fields: Record<string, string>) => {
    if (systemd.enabled) notified = notified.then(() => systemd.notify(fields));
    return notified;
  };
  void notify({ READY: "1", STATUS: `${options.prefix}state=${controller.state}` });
  const offStatus = controller.subscribe({
    state: ({ state }) => void notify({ STATUS: `${options.prefix}state=${state}` }),
  });
  const watchdog = systemd.watchdogMs === undefined
    ? undefined
    : setInterval(() => void notify({ WATCHDOG: "1" }), systemd.watchdogMs);

  // Event-loop lag: every stall delays every client; the largest lag of each acquisition is logged
  // (busy: the part the thread itself was working, the rest it waited for a CPU).
  const lag = new LoopLagMonitor({
    intervalMs: 20,
    stallMs: 250,
    cpuMs: threadCpuMs,
    onStall: ({ lagMs, busyMs }) =>
      log.warning("Event loop blocked", {
        ms: Math.round(lagMs),
        busy_ms: busyMs === undefined ? "unknown" : Math.round(busyMs),
      }),
  });
  lag.start();
  let lagReport: ReturnType<typeof setTimeout> | undefined;
  const offLag = controller.subscribe({
    state: ({ old, state }) => {
      if (state === "INTEGRATE") lag.take();
      else if (old === "PROCESS" || old === "INTEGRATE" || old === "CANCEL") {
        if (state === "PROCESS" || state === "CANCEL") return;
        // After the monitor's next tick: a stall in the last step (publishing) counts too.
        clearTimeout(lagReport);
        lagReport = setTimeout(() => {
          const sample = lag.take();
          log.info("Acquisition event-loop lag", {
            max_ms: Math.round(sample.maxMs),
            max_busy_ms: sample.maxBusyMs === undefined ? "unknown" : Math.round(sample.maxBusyMs),
            state,
          });
        }, 1);
      }
    },
  });
  await controller.start();
  await Promise.race([stopped, controller.done]);
  offLag();
  clearTimeout(lagReport);
  lag.stop();
  await notify({ STOPPING: "1" });
  if (watchdog !== undefined) clearInterval(watchdog);
  offStatus();
  await controller.stop();
  const exit = await controller.done;
  systemd.close();
  for (const [name, listener] of listeners) Deno.removeSignalListener(name, listener);
  pvs.close();
  await pva?.close();
  await server.close();
  if (stopSignal === undefined && exit.failed) {
    log.fatal("Exiting after an unrecoverable failure", { reason: exit.reason });
    return 1;
  }
  log.info("Stopped", { signal: stopSignal });
  return 0;
}
