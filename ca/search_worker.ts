/**
 * Answers UDP name searches on a thread of its own, so that searches are answered at once even
 * while the main thread is busy writing images (a busy single thread gets only its share of a
 * loaded machine, and its socket buffer overflows). The worker owns the search sockets, knows
 * the names of the served records (kept up to date by {@link SearchWorker.names}) and answers
 * those itself; datagrams that also ask for other names (fields such as `PV.DESC`, or names of
 * other servers) go to the main thread's `lookup`, whose replies the worker sends.
 *
 * The worker runs from a Blob made of the source text of {@link answerSearchDatagram} and
 * {@link searchWorkerMain}, which refer to nothing outside themselves, so that it also works from
 * the single-file bundle and the compiled binary.
 *
 * @module
 */

import { answerSearchDatagram } from "./search.ts";

/** One search socket: bind `hostname`, reply from the socket bound to `replyHost`. */
export interface SearchBinding {
  /** Address to bind. */
  hostname: string;
  /** Address whose socket sends the replies (itself for unicast addresses). */
  replyHost: string;
  /** Whether failing to bind is only a warning (broadcast addresses). */
  optional: boolean;
}

/** Options of {@link startSearchWorker}. */
export interface SearchWorkerOptions {
  /** Sockets to open, unicast ones first; all on one port. */
  bindings: SearchBinding[];
  /** UDP port (0 = OS-assigned, taken by the first binding). */
  port: number;
  /** Source addresses to ignore. */
  ignore: string[];
  /**
   * Answers the names of `datagram` other than `answered` (which the worker replied to already):
   * the replies to send back, or none. Called on the main thread.
   */
  lookup(datagram: Uint8Array, answered: ReadonlySet<string>): Uint8Array[];
  /** Logs a worker event. */
  log(level: "warning" | "debug", message: string, fields: Record<string, unknown>): void;
}

/** A running search worker. */
export interface SearchWorker {
  /** The UDP port the sockets are bound to. */
  readonly udpPort: number;
  /** Starts answering, announcing `tcpPort` (until then every datagram goes to `lookup`). */
  serve(tcpPort: number): void;
  /** Adds and removes served record names. */
  names(add: string[], remove: string[]): void;
  /** Closes the sockets and ends the worker. */
  close(): Promise<void>;
}

type ToWorker =
  | { type: "start"; bindings: SearchBinding[]; port: number; ignore: string[] }
  | { type: "serve"; tcpPort: number }
  | { type: "names"; add: string[]; remove: string[] }
  | { type: "send"; datagrams: Uint8Array[]; socket: number; hostname: string; port: number }
  | { type: "stop" };

type FromWorker =
  | { type: "ready"; port: number }
  | { type: "failed"; error: string }
  | {
    type: "lookup";
    datagram: Uint8Array;
    answered: string[];
    socket: number;
    hostname: string;
    port: number;
  }
  | { type: "log"; level: "warning" | "debug"; message: string; fields: Record<string, unknown> }
  | { type: "stopped" };

/**
 * The worker's program; `answer` is {@link answerSearchDatagram}. Refers to nothing outside its
 * body but built-in globals (it runs from its source text).
 */
export function searchWorkerMain(answer: typeof answerSearchDatagram): void {
  const scope = self as unknown as {
    onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
    postMessage(message: FromWorker): void;
  };
  const names = new Set<string>();
  const ignore = new Set<string>();
  const receivers: { socket: Deno.DatagramConn; reply: number }[] = [];
  const sockets: Deno.DatagramConn[] = [];
  let tcpPort = 0;
  let stopping = false;
  const post = (message: FromWorker) => scope.postMessage(message);
  const serve = async (socket: Deno.DatagramConn, replyIndex: number) => {
    const reply = sockets[replyIndex];
    while (!stopping) {
      let datagram: Uint8Array;
      let from: Deno.NetAddr;
      try {
        const [data, addr] = await socket.receive();
        datagram = data;
        from = addr as Deno.NetAddr;
      } catch (error) {
        if (stopping) break;
        post({
          type: "log",
          level: "warning",
          message: "UDP receive failed",
          fields: { error: String(error) },
        });
        await new Promise((resolve) => setTimeout(resolve, 10));
        continue;
      }
      if (ignore.has(from.hostname)) continue;
      let unknown = false;
      const answered: string[] = [];
      const replies = answer(datagram, tcpPort, (name) => {
        if (tcpPort !== 0 && names.has(name)) {
          answered.push(name);
          return true;
        }
        unknown = true;
        return false;
      });
      for (const datagram of replies) {
        try {
          await reply.send(datagram, from);
        } catch (error) {
          post({
            type: "log",
            level: "debug",
            message: "UDP search reply failed",
            fields: { error: String(error), peer: from.hostname },
          });
        }
      }
      if (unknown) {
        post({
          type: "lookup",
          datagram,
          answered,
          socket: replyIndex,
          hostname: from.hostname,
          port: from.port,
        });
      }
    }
  };
  scope.onmessage = async (event) => {
    const message = event.data;
    if (message.type === "start") {
      for (const address of message.ignore) ignore.add(address);
      let port = message.port;
      const byHost = new Map<string, number>();
      try {
        for (const binding of message.bindings) {
          let socket: Deno.DatagramConn;
          try {
            socket = Deno.listenDatagram({
              transport: "udp",
              hostname: binding.hostname,
              port,
              reuseAddress: true,
            });
          } catch (error) {
            if (!binding.optional) throw error;
            post({
              type: "log",
              level: "warning",
              message: "Cannot receive broadcast searches",
              fields: { address: binding.hostname, error: String(error) },
            });
            continue;
          }
          port = (socket.addr as Deno.NetAddr).port;
          sockets.push(socket);
          if (!byHost.has(binding.hostname)) byHost.set(binding.hostname, sockets.length - 1);
          receivers.push({ socket, reply: byHost.get(binding.replyHost) ?? sockets.length - 1 });
        }
      } catch (error) {
        for (const socket of sockets) socket.close();
        post({ type: "failed", error: String(error) });
        return;
      }
      for (const { socket, reply } of receivers) serve(socket, reply);
      post({ type: "ready", port });
    } else if (message.type === "serve") {
      tcpPort = message.tcpPort;
    } else if (message.type === "names") {
      for (const name of message.add) names.add(name);
      for (const name of message.remove) names.delete(name);
    } else if (message.type === "send") {
      const to = { transport: "udp" as const, hostname: message.hostname, port: message.port };
      for (const datagram of message.datagrams) {
        try {
          await sockets[message.socket].send(datagram, to);
        } catch {
          // The client is gone; it searches again.
        }
      }
    } else if (message.type === "stop") {
      stopping = true;
      for (const socket of sockets) socket.close();
      post({ type: "stopped" });
    }
  };
}

/**
 * Starts the search worker and binds its sockets. Resolves to undefined when workers are not
 * available here (the caller then answers searches on its own thread); rejects when a required
 * socket cannot be bound.
 */
export async function startSearchWorker(
  options: SearchWorkerOptions,
): Promise<SearchWorker | undefined> {
  let worker: Worker;
  let url: string;
  try {
    const source =
      `const answer = ${answerSearchDatagram.toString()};\n(${searchWorkerMain.toString()})(answer);\n`;
    url = URL.createObjectURL(new Blob([source], { type: "application/javascript" }));
    worker = new Worker(url, { type: "module" });
  } catch (error) {
    options.log("warning", "No search worker: answering searches on the main thread", {
      error: String(error),
    });
    return undefined;
  }
  const post = (message: ToWorker) => worker.postMessage(message);
  let stopped: (() => void) | undefined;
  const ready = new Promise<number | undefined>((resolve, reject) => {
    worker.onerror = (event) => {
      event.preventDefault();
      options.log("warning", "Search worker failed", { error: event.message });
      resolve(undefined);
    };
    worker.onmessage = (event: MessageEvent<FromWorker>) => {
      const message = event.data;
      switch (message.type) {
        case "ready":
          resolve(message.port);
          break;
        case "failed":
          reject(new Error(message.error));
          break;
        case "lookup": {
          const datagrams = options.lookup(message.datagram, new Set(message.answered));
          if (datagrams.length > 0) {
            post({
              type: "send",
              datagrams,
              socket: message.socket,
              hostname: message.hostname,
              port: message.port,
            });
          }
          break;
        }
        case "log":
          options.log(message.level, message.message, message.fields);
          break;
        case "stopped":
          stopped?.();
          break;
      }
    };
  });
  post({
    type: "start",
    bindings: options.bindings,
    port: options.port,
    ignore: options.ignore,
  });
  let port: number | undefined;
  try {
    port = await ready;
  } catch (error) {
    worker.terminate();
    URL.revokeObjectURL(url);
    throw error;
  }
  if (port === undefined) {
    worker.terminate();
    URL.revokeObjectURL(url);
    return undefined;
  }
  return {
    udpPort: port,
    serve(tcpPort) {
      post({ type: "serve", tcpPort });
    },
    names(add, remove) {
      post({ type: "names", add, remove });
    },
    async close() {
      const done = new Promise<void>((resolve) => (stopped = resolve));
      const timer = setTimeout(() => stopped?.(), 2000);
      post({ type: "stop" });
      await done;
      clearTimeout(timer);
      worker.terminate();
      URL.revokeObjectURL(url);
    },
  };
}
