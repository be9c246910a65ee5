import assert from "node:assert/strict";
import { createSdNotifier, formatNotification, watchdogIntervalMs } from "../lib/sd_notify.ts";

Deno.test("notifications are KEY=VALUE lines without embedded newlines", () => {
  assert.equal(formatNotification({ READY: "1", STATUS: "a\nb" }), "READY=1\nSTATUS=a b");
});

Deno.test("watchdog interval is half of WATCHDOG_USEC and respects WATCHDOG_PID", () => {
  assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: "10000000" }, 5), 5000);
  assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: "10000000", WATCHDOG_PID: "5" }, 5), 5000);
  assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: "10000000", WATCHDOG_PID: "6" }, 5), undefined);
  assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: "junk" }, 5), undefined);
  assert.equal(watchdogIntervalMs({}, 5), undefined);
});

Deno.test("without NOTIFY_SOCKET (or with an abstract one) notifying is a no-op", async () => {
  for (const env of [{}, { NOTIFY_SOCKET: "@abstract" }]) {
    const n = createSdNotifier(env);
    assert.equal(n.enabled, false);
    await n.notify({ READY: "1" });
    n.close();
  }
});

Deno.test("READY=1 reaches a unix datagram socket like systemd's", async () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/notify`;
  const receiver = Deno.listenDatagram({ transport: "unixpacket", path });
  const notifier = createSdNotifier({ NOTIFY_SOCKET: path, WATCHDOG_USEC: "4000000" });
  try {
    assert.equal(notifier.enabled, true);
    assert.equal(notifier.watchdogMs, 2000);
    const received = receiver.receive();
    await notifier.notify({ READY: "1", STATUS: "IOC serving" });
    const [bytes] = await received;
    assert.equal(new TextDecoder().decode(bytes), "READY=1\nSTATUS=IOC serving");
  } finally {
    notifier.close();
    receiver.close();
    Deno.removeSync(dir, { recursive: true });
  }
});
