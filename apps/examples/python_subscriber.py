#!/usr/bin/python3
"""A troupe event subscriber in Python, written from docs/protocol.md (section 7).

Follows a head's events: starts from a snapshot, applies events in sequence order, and when a
sequence number is missing asks the head for a replay (or a snapshot, when its ring has lost
them). Prints one JSON line per event (with --print), and a summary at the end.

    python3 apps/examples/python_subscriber.py --to tcp://127.0.0.1:5555 --print
    python3 apps/examples/python_subscriber.py --to tcp://127.0.0.1:5555 --until-finished 200

Exits 0 once --until-finished tasks have ended (or on Ctrl-C), 2 on a timeout.
"""
import argparse
import itertools
import json
import sys
import time

import msgpack
import zmq

TERMINAL = {"task.completed", "task.failed", "task.cancelled", "task.expired"}


class Follower:
    def __init__(self, head, timeout):
        self.ctx = zmq.Context.instance()
        self.timeout = timeout
        self.ids = itertools.count(1)
        self.dealer = self.ctx.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        self.dealer.connect(head)
        status = self.request("status_request", {}, "status")
        if not status["events_endpoint"]:
            raise RuntimeError("the head publishes no events")
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")  # the whole stream: gaps show only in it
        self.sub.connect(status["events_endpoint"])
        self.next = None  # seq expected next; None until the first snapshot
        self.held = {}    # events that arrived ahead of self.next
        self.tasks, self.finished, self.gaps = {}, {}, 0

    def send(self, msg_type, body):
        msg_id = next(self.ids)
        header = {"v": 1, "type": msg_type, "id": msg_id, "corr": 0, "from": "py-sub", "epoch": 0}
        self.dealer.send_multipart([msgpack.packb(header), msgpack.packb(body)])
        return msg_id

    def request(self, msg_type, body, reply_type):
        msg_id = self.send(msg_type, body)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if not self.dealer.poll(int(max(0, deadline - time.monotonic()) * 1000)):
                break
            h, b = (msgpack.unpackb(f, raw=False) for f in self.dealer.recv_multipart())
            if h["corr"] == msg_id and h["type"] == reply_type:
                return b
            if h["type"] == "error":
                raise RuntimeError("%s: %s" % (b["code"], b["message"]))
        raise TimeoutError("no %s from the head" % reply_type)

    def apply(self, e, emit):
        topic, task = e["topic"], e["task"]
        if topic.startswith("task.") and task:
            if topic in TERMINAL:
                self.tasks.pop(task, None)
                self.finished[task] = topic.split(".")[1]
            else:
                self.tasks[task] = topic.split(".")[1]
        self.next = e["seq"] + 1
        if emit:
            print(json.dumps(e), flush=True)

    def snapshot(self):
        s = self.request("snapshot_request", {}, "snapshot")
        self.tasks = {t["id"]: t["state"] for t in s["tasks"]}
        self.finished.update({t["id"]: t["state"] for t in s["finished"]})
        self.next = s["seq"] + 1

    def catch_up(self, emit):
        """Fills [self.next, first held) from the head's ring, or from a snapshot."""
        while True:
            r = self.request("replay_request", {"since": self.next}, "replay")
            if not r["complete"]:
                self.snapshot()
                return
            for e in r["events"]:
                if e["seq"] == self.next:
                    self.apply(e, emit)
            if self.next > r["last_seq"] or (self.held and min(self.held) <= self.next):
                return

    def drain(self, emit):
        while self.held:
            first = min(self.held)
            if first < self.next:
                del self.held[first]
            elif first == self.next:
                self.apply(self.held.pop(first), emit)
            else:
                self.gaps += 1
                self.catch_up(emit)
                if min(self.held, default=self.next) > self.next:
                    continue

    def follow(self, until_finished, emit, deadline):
        self.snapshot()
        while time.monotonic() < deadline:
            if until_finished and len(self.finished) >= until_finished:
                return True
            if not self.sub.poll(1000):
                self.catch_up(emit)  # quiet: a lost tail shows no jump; ask what is newer
                continue
            topic, body = self.sub.recv_multipart()
            e = msgpack.unpackb(body, raw=False)
            if e["seq"] < self.next:
                continue
            self.held[e["seq"]] = e
            self.drain(emit)
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--to", required=True, help="the head's endpoint")
    ap.add_argument("--until-finished", type=int, default=0, help="stop once this many tasks ended")
    ap.add_argument("--print", action="store_true", help="print every event as a JSON line")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to follow at most")
    args = ap.parse_args()
    f = Follower(args.to, 10.0)
    try:
        done = f.follow(args.until_finished, args.print, time.monotonic() + args.timeout)
    except KeyboardInterrupt:
        done = True
    outcomes = {}
    for state in f.finished.values():
        outcomes[state] = outcomes.get(state, 0) + 1
    print(json.dumps({"last_seq": f.next - 1, "gaps": f.gaps, "in_flight": len(f.tasks),
                      "finished": len(f.finished), "outcomes": outcomes}), flush=True)
    return 0 if done or not args.until_finished else 2


if __name__ == "__main__":
    sys.exit(main())
