#!/usr/bin/python3
"""A troupe client in Python, written from docs/protocol.md alone.

Submits tasks to a head over ZeroMQ (a DEALER socket) with MessagePack frames and prints one
JSON line per result. Uses Debian's python3-zmq and python3-msgpack.

    python3 apps/examples/python_client.py --to tcp://127.0.0.1:5555 --count 200

Exits 0 when every task completed, 1 when some did not, 2 when the head did not answer in time.
"""
import argparse
import itertools
import json
import sys
import time

import msgpack
import zmq

PROTOCOL_VERSION = 1


class Client:
    def __init__(self, endpoint, name="python-client"):
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.name = name
        self.ids = itertools.count(1)

    def send(self, msg_type, body):
        msg_id = next(self.ids)
        header = {"v": PROTOCOL_VERSION, "type": msg_type, "id": msg_id, "corr": 0,
                  "from": self.name, "epoch": 0}
        self.sock.send_multipart([msgpack.packb(header), msgpack.packb(body, use_bin_type=True)])
        return msg_id

    def receive(self, timeout_s):
        """One message as (header, body), or None after timeout_s."""
        if not self.sock.poll(int(timeout_s * 1000)):
            return None
        frames = self.sock.recv_multipart()
        if len(frames) != 2:
            raise RuntimeError("expected 2 frames, got %d" % len(frames))
        header = msgpack.unpackb(frames[0], raw=False)
        body = msgpack.unpackb(frames[1], raw=False)
        return header, body

    def run(self, tasks, timeout_s):
        """Submits the tasks in one message; returns {id: result} once all have one."""
        submit_id = self.send("submit", {"tasks": tasks})
        ids, results = None, {}
        deadline = time.monotonic() + timeout_s
        while ids is None or len(results) < len(ids):
            left = deadline - time.monotonic()
            msg = self.receive(max(0.0, left)) if left > 0 else None
            if msg is None:
                raise TimeoutError("%d of %d results after %.0f s" %
                                   (len(results), len(tasks), timeout_s))
            header, body = msg
            if header["type"] == "submitted" and header["corr"] == submit_id:
                ids = body["ids"]
            elif header["type"] == "result":
                # Results may arrive before the ids: keep them all, match at the end.
                for r in body["tasks"]:
                    results[r["id"]] = r
            elif header["type"] == "error":
                raise RuntimeError("head refused message %d: %s: %s" %
                                   (header["corr"], body["code"], body["message"]))
        return ids, {i: results[i] for i in ids}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--to", required=True, help="the head's endpoint")
    ap.add_argument("--count", type=int, default=200, help="gemm tasks to submit")
    ap.add_argument("--size", type=int, default=32, help="gemm matrix size")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for results")
    args = ap.parse_args()

    tasks = [{"kind": "gemm", "params": {"size": args.size, "seed": i}, "priority": 1}
             for i in range(args.count)]
    client = Client(args.to)
    try:
        ids, results = client.run(tasks, args.timeout)
    except TimeoutError as e:
        print("python client: %s" % e, file=sys.stderr)
        return 2
    failed = 0
    for task_id, spec in zip(ids, tasks):
        r = results[task_id]
        failed += r["outcome"] != "completed"
        print(json.dumps({"id": task_id, "seed": spec["params"]["seed"], "outcome": r["outcome"],
                          "code": r["code"], "values": r["values"], "attempts": r["attempts"]}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
