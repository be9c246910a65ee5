"""libzmq (pyzmq) peer for the ZMTP interop tests.

push MODE: `zmq_peer.py push PORT [HEARTBEAT_MS]` binds a PUSH socket on 127.0.0.1:PORT (0 =
ephemeral; with HEARTBEAT_MS libzmq PINGs every HEARTBEAT_MS and drops a peer silent for 4x that),
prints
"PORT <n>", then executes one JSON command per stdin line:
  ["send", [frame, ...]]  frame = {"text": "..."} | {"fill": byte, "n": size} | {"seq": size}
  ["sleep", seconds]  (prints "SLEPT")
  ["quit"]
and prints "SENT" after each send (the send blocks until a PULL peer takes it).

pull MODE: `zmq_peer.py pull PORT COUNT` connects a PULL socket to 127.0.0.1:PORT, prints "READY",
receives COUNT messages and prints one JSON line per message: [[length, sha256-hex], ...].
"""
import hashlib
import json
import sys
import time

import zmq


def frame(spec):
    if "text" in spec:
        return spec["text"].encode()
    if "fill" in spec:
        return bytes([spec["fill"]]) * spec["n"]
    if "seq" in spec:
        return bytes(i % 251 for i in range(spec["seq"]))
    raise ValueError(spec)


def main():
    mode = sys.argv[1]
    ctx = zmq.Context()
    if mode == "push":
        sock = ctx.socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 2000)
        if len(sys.argv) > 3:
            ivl = int(sys.argv[3])
            sock.setsockopt(zmq.HEARTBEAT_IVL, ivl)
            sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 4 * ivl)
            sock.setsockopt(zmq.HEARTBEAT_TTL, 4 * ivl)
        port = int(sys.argv[2])
        if port == 0:
            port = sock.bind_to_random_port("tcp://127.0.0.1")
        else:
            sock.bind("tcp://127.0.0.1:%d" % port)
        print("PORT %d" % port, flush=True)
        for line in sys.stdin:
            cmd = json.loads(line)
            if cmd[0] == "quit":
                break
            if cmd[0] == "sleep":
                time.sleep(cmd[1])
                print("SLEPT", flush=True)
            if cmd[0] == "send":
                sock.send_multipart([frame(f) for f in cmd[1]])
                print("SENT", flush=True)
    else:
        sock = ctx.socket(zmq.PULL)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect("tcp://127.0.0.1:%s" % sys.argv[2])
        print("READY", flush=True)
        for _ in range(int(sys.argv[3])):
            parts = sock.recv_multipart()
            print(json.dumps([[len(p), hashlib.sha256(p).hexdigest()] for p in parts]), flush=True)
    sock.close()
    ctx.term()


if __name__ == "__main__":
    main()
