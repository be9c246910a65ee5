/**
 * Ports for servers that a test stops and starts again on the same port: chosen below the kernel's
 * ephemeral range (32768+ on Linux by default). An ephemeral port freed by the first server may
 * meanwhile become the source port of any outgoing connection (even of a reconnecting client
 * connected to itself), and listening there again then fails with AddrInUse.
 *
 * @module
 */

/** Calls `listen(port)` on ports below the ephemeral range until one is free; returns its result. */
export function listenBelowEphemeral<T>(listen: (port: number) => T): T {
  const start = 20000 + Math.floor(Math.random() * 10000);
  for (let port = start; port < start + 2000; port++) {
    try {
      return listen(port);
    } catch (e) {
      if (!(e instanceof Deno.errors.AddrInUse)) throw e;
    }
  }
  throw new Error(`no free port in ${start}..${start + 1999}`);
}
