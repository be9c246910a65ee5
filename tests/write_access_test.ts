/**
 * `--write-hosts` / `DISS_WRITE_HOSTS`: parsing, matching, and the access rights a circuit sends
 * (recomputed when the client announces its user or host name after creating channels).
 */

import assert from "node:assert/strict";
import { ConfigError, parseIocOptions, parseWriteHosts } from "../lib/config.ts";
import { matchesWriteHost, writeHostsAccess } from "../lib/write_access.ts";
import { CMD, createChanRequest, nameMessage, writeRequest } from "../ca/messages.ts";
import { ECA } from "../ca/codec.ts";
import { makeHarness } from "./support/circuit_harness.ts";

Deno.test("write hosts: parsing of hosts, addresses and user@host", () => {
  assert.deepEqual(parseWriteHosts("ops1, 10.0.0.7 alice@ops2", "X"), [
    { host: "ops1" },
    { host: "10.0.0.7" },
    { user: "alice", host: "ops2" },
  ]);
  for (const bad of ["", " , ", "@ops", "bob@", "a b@c/d", "ops;rm"]) {
    assert.throws(() => parseWriteHosts(bad, "DISS_WRITE_HOSTS"), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /^DISS_WRITE_HOSTS: /);
      return true;
    }, bad);
  }
  const env = { DISS_WRITE_HOSTS: "a" };
  assert.deepEqual(parseIocOptions(["--backend", "sim"], env).writeHosts, [{ host: "a" }]);
  assert.deepEqual(
    parseIocOptions(["--backend", "sim", "--write-hosts", "b@c"], env).writeHosts,
    [{ user: "b", host: "c" }],
  );
  assert.equal(parseIocOptions(["--backend", "sim"], {}).writeHosts, undefined);
});

Deno.test("write hosts: addresses match the peer, names the announced host, users the user", () => {
  const client = { user: "alice", host: "Ops1", address: "10.0.0.7" };
  assert.ok(matchesWriteHost({ host: "10.0.0.7" }, client));
  assert.ok(!matchesWriteHost({ host: "10.0.0.8" }, client));
  assert.ok(matchesWriteHost({ host: "ops1" }, client), "host names ignore case");
  assert.ok(!matchesWriteHost({ host: "ops" }, client));
  assert.ok(matchesWriteHost({ user: "alice", host: "10.0.0.7" }, client));
  assert.ok(!matchesWriteHost({ user: "bob", host: "10.0.0.7" }, client));
  assert.ok(!matchesWriteHost({ host: "10.0.0.7" }, { ...client, address: "10.0.0.70" }));
  // A host name that looks like the address does not match an announced name.
  assert.ok(!matchesWriteHost({ host: "10.0.0.7" }, { ...client, host: "10.0.0.7", address: "x" }));
});

Deno.test("write hosts: circuit rights follow the announced names; writes get NOWTACCESS", async () => {
  const h = makeHarness({ writeAccess: writeHostsAccess(parseWriteHosts("ops@ctl", "X")) });
  h.store.add({ name: "D", type: "double", writable: true });
  // No names announced yet: read only.
  let out = await h.exchange(createChanRequest("D", 1));
  const sid = out.find((m) => m.header.cmd === CMD.CREATE_CHAN)!.header.p2;
  assert.equal(out[0].header.cmd, CMD.ACCESS_RIGHTS);
  assert.equal(out[0].header.p2, 1, "read only");
  const f64 = new Uint8Array(8);
  out = await h.exchange(writeRequest(CMD.WRITE_NOTIFY, 6, 1, sid, 1, f64));
  assert.equal(out[0].header.p1, ECA.NOWTACCESS);
  // The listed identity: rights become read+write (an ACCESS_RIGHTS update, as rsrv sends).
  out = await h.exchange(nameMessage(CMD.CLIENT_NAME, "ops"), nameMessage(CMD.HOST_NAME, "ctl"));
  assert.deepEqual(out.map((m) => [m.header.cmd, m.header.p1, m.header.p2]), [
    [CMD.ACCESS_RIGHTS, 1, 3],
  ]);
  out = await h.exchange(writeRequest(CMD.WRITE_NOTIFY, 6, 1, sid, 2, f64));
  assert.equal(out[0].header.p1, ECA.NORMAL);
  // Another user on the same host: read only again.
  out = await h.exchange(nameMessage(CMD.CLIENT_NAME, "guest"));
  assert.deepEqual(out.map((m) => [m.header.cmd, m.header.p2]), [[CMD.ACCESS_RIGHTS, 1]]);
});
