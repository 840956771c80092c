#!/usr/bin/python3
"""A troupe client in Python, written from docs/protocol.md alone.

Submits tasks to a head over ZeroMQ (a DEALER socket) with MessagePack frames and prints one
JSON line per task, in the order submitted. Uses Debian's python3-zmq and python3-msgpack.

    python3 apps/examples/python_client.py --to tcp://127.0.0.1:5555 --count 200
    python3 apps/examples/python_client.py --to ipc:///tmp/head --kind sleep --params '{"ms": 3}'
    python3 apps/examples/python_client.py --to tcp://127.0.0.1:5555 \
        --graph apps/examples/pipeline-graph.json

With --graph, it reads a graph file (docs/graphs.md), sends its tasks in one submit with their
`after` and `inputs` as indices, and prints a line per task with its name.

It carries on across a restart of the head, as troupe::client does: its DEALER has a stable
routing id (results are routed to it after a reconnect), every submit has a token and is sent
again until its `submitted` arrives (a head creates nothing for a token it has seen), and it asks
the head about outstanding tasks with `fetch` when the head is a new incarnation (header `epoch`)
or has been quiet. Tasks the head does not know end `failed` with `result_lost`; when nothing is
heard for --head-timeout seconds, the outstanding ones end `failed` with `head_unreachable`.

Exits 0 when every task completed, 1 when some did not, 2 when the head did not answer in time.
"""
import argparse
import itertools
import json
import secrets
import sys
import time

import msgpack
import zmq

PROTOCOL_VERSION = 1
MAX_TASKS_PER_SUBMIT = 10000  # cluster.max_tasks_per_submit's default (docs/protocol.md, 3)
MAX_IDS_PER_FETCH = 65536


class HeadUnreachable(Exception):
    pass


class Client:
    def __init__(self, endpoint, name="python-client", resync_s=1.0, head_timeout_s=60.0,
                 per_submit=MAX_TASKS_PER_SUBMIT, log=None, keys=None):
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if keys:  # a head with keys (docs/security.md): CURVE, with our pair and its public key
            public, secret, head_public = keys
            self.sock.curve_serverkey = head_public
            self.sock.curve_publickey = public
            self.sock.curve_secretkey = secret
        # A stable identity: the head routes results by it, also to a reconnected socket.
        self.identity = b"py-" + secrets.token_hex(8).encode()
        self.sock.setsockopt(zmq.ROUTING_ID, self.identity)
        self.sock.connect(endpoint)
        self.endpoint = endpoint
        self.name = name
        self.ids = itertools.count(1)
        self.token_base = secrets.randbits(63)  # a submit's token: this + its message id (> 0)
        self.resync_s = resync_s
        self.head_timeout_s = head_timeout_s
        self.per_submit = max(1, per_submit)
        self.log = log or (lambda msg: None)
        self.head_epoch = 0
        self.stats = {"resent_submits": 0, "fetches": 0, "duplicates": 0, "incarnations": 0,
                      "send_blocked": 0}

    def frames(self, msg_type, body, msg_id=None):
        msg_id = next(self.ids) if msg_id is None else msg_id
        header = {"v": PROTOCOL_VERSION, "type": msg_type, "id": msg_id, "corr": 0,
                  "from": self.name, "epoch": 0}
        return msg_id, [msgpack.packb(header), msgpack.packb(body, use_bin_type=True)]

    def send(self, frames):
        """Never blocks: a message that cannot be queued now is sent again later."""
        try:
            self.sock.send_multipart(frames, flags=zmq.NOBLOCK)
            return True
        except zmq.Again:
            self.stats["send_blocked"] += 1
            return False

    def run(self, tasks, timeout_s=0.0, on_failure=None, gang=False):
        """Submits the tasks (in messages of at most per_submit tasks) and waits until each has
        a result. Returns one result per task, in order; a task never given an id has id None.
        A graph (on_failure given) or a gang (docs/reservations.md: placed on distinct workers
        all at once, or refused whole) goes in one submit.
        Raises HeadUnreachable (with the results so far) after head_timeout_s of silence, and
        TimeoutError after timeout_s in all (0: no limit)."""
        start = time.monotonic()
        deadline = start + timeout_s if timeout_s > 0 else None
        submits = {}  # msg id -> {"frames", "sent", "first", "count"}: not answered yet
        # A graph (on_failure given) travels in one submit: its links are indices into it.
        per_submit = max(1, len(tasks)) if on_failure or gang else self.per_submit
        for first in range(0, len(tasks), per_submit):
            part = tasks[first:first + per_submit]
            msg_id = next(self.ids)
            body = {"tasks": part, "token": self.token_base + msg_id}
            if on_failure:
                body["on_failure"] = on_failure
            if gang:
                body["gang"] = True
            _, frames = self.frames("submit", body, msg_id)
            submits[msg_id] = {"frames": frames, "sent": time.monotonic(), "first": first,
                               "count": len(part)}
            self.send(frames)
        ids = [None] * len(tasks)
        results = {}         # task id -> its first result (results may come before the ids)
        outstanding = set()  # ids known, no result yet
        last_heard = time.monotonic()
        last_fetch = 0.0
        next_check = 0.0
        resync_now = False
        tick = max(0.01, self.resync_s / 4)
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)

        def give_up(why):
            out = []
            for pos, task_id in enumerate(ids):
                r = results.get(task_id) if task_id is not None else None
                if r is None:  # outstanding, or its submit was never answered
                    r = {"id": task_id, "kind": tasks[pos].get("kind", ""), "outcome": "failed",
                         "code": "head_unreachable", "message": why, "values": {},
                         "attempts": 0, "worker": -1}
                out.append(r)
            return out

        while submits or outstanding:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise TimeoutError("%d of %d results after %.0f s" %
                                   (sum(1 for i in ids if i is not None and i in results),
                                    len(tasks), timeout_s))
            wait = tick if deadline is None else min(tick, deadline - now)
            if dict(poller.poll(max(0, int(wait * 1000)))).get(self.sock):
                for _ in range(1000):  # what has arrived, then the checks below
                    try:
                        frames = self.sock.recv_multipart(flags=zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    if len(frames) != 2:
                        self.log("a message of %d frames from the head, expected 2" % len(frames))
                        continue
                    header = msgpack.unpackb(frames[0], raw=False)
                    body = msgpack.unpackb(frames[1], raw=False)
                    last_heard = time.monotonic()
                    epoch = header.get("epoch", 0)
                    if epoch != self.head_epoch:
                        if self.head_epoch != 0:
                            self.stats["incarnations"] += 1
                            self.log("the head is a new incarnation (%d, was %d): asking it "
                                     "about %d outstanding task(s)" %
                                     (epoch, self.head_epoch, len(outstanding)))
                            resync_now = True
                        self.head_epoch = epoch
                    kind = header.get("type")
                    if kind == "submitted":
                        w = submits.pop(header.get("corr", 0), None)
                        if w is None:
                            continue  # an answer to a submit sent again
                        got = body["ids"]
                        if len(got) != w["count"]:
                            raise RuntimeError("submit %d of %d tasks got %d ids" %
                                               (header["corr"], w["count"], len(got)))
                        ids[w["first"]:w["first"] + w["count"]] = got
                        outstanding.update(i for i in got if i not in results)
                    elif kind == "result":
                        for r in body["tasks"]:
                            if r["id"] in results:
                                self.stats["duplicates"] += 1
                                continue
                            results[r["id"]] = r
                            outstanding.discard(r["id"])
                    elif kind == "fetched":
                        for task_id in body.get("unknown", []):
                            if task_id not in outstanding:
                                continue
                            outstanding.discard(task_id)
                            results[task_id] = {
                                "id": task_id, "outcome": "failed", "code": "result_lost",
                                "message": "the head (incarnation %d) does not know task %d: it "
                                "restarted without a journal, or dropped the result" %
                                (self.head_epoch, task_id),
                                "values": {}, "attempts": 0, "worker": -1}
                    elif kind == "error":
                        if header.get("corr", 0) in submits:
                            raise RuntimeError("head refused message %d: %s: %s" %
                                               (header["corr"], body["code"],
                                                body.get("message", "")))
                        self.log("the head refused message %d: %s: %s" %
                                 (header.get("corr", 0), body["code"], body.get("message", "")))
                    else:
                        self.log("unexpected '%s' message from the head" % kind)

            # Between messages: send again what was not answered, ask when the head is quiet or
            # new, give up after head_timeout_s of silence.
            now = time.monotonic()
            if not (submits or outstanding):
                break
            if now - last_heard >= self.head_timeout_s:
                raise HeadUnreachable(
                    give_up("no message from the head at %s for %.0f s (--head-timeout)" %
                            (self.endpoint, self.head_timeout_s)))
            if now < next_check and not resync_now:
                continue
            next_check = now + tick
            force, resync_now = resync_now, False
            for w in submits.values():
                if force or now - w["sent"] >= self.resync_s:
                    w["sent"] = now
                    self.stats["resent_submits"] += 1
                    self.send(w["frames"])
            if outstanding and (force or (now - last_heard >= self.resync_s and
                                          now - last_fetch >= self.resync_s)):
                last_fetch = now
                ask = sorted(outstanding)
                self.log("fetching %d outstanding task(s)" % len(ask))
                for at in range(0, len(ask), MAX_IDS_PER_FETCH):
                    self.stats["fetches"] += 1
                    self.send(self.frames("fetch", {"ids": ask[at:at + MAX_IDS_PER_FETCH]})[1])
        return [results[i] for i in ids]


def read_key(path, field):
    """A key of a file written by `troupe keygen` (TOML: public_key = "...", secret_key = "...")."""
    with open(path) as f:
        for line in f:
            name, _, value = line.partition("=")
            if name.strip() == field:
                return value.strip().strip('"').encode()
    raise SystemExit("python client: %s has no %s (a file of troupe keygen?)" % (path, field))


NEEDS = ("cpu_slots", "memory_bytes", "gpu_count", "gpu_memory_bytes")
SAME_ON_THE_WIRE = ("kind", "params", "priority", "deadline_ms", "max_retries",
                    "retry_backoff_ms", "timeout_ms", "labels", "preemptible")


def graph_tasks(path):
    """A graph file (docs/graphs.md) as the tasks of one submit: names become indices, each
    task's name goes into its labels. Returns (names, tasks, on_failure)."""
    with open(path) as f:
        graph = json.load(f)
    names = [t["name"] for t in graph["tasks"]]
    index = {name: i for i, name in enumerate(names)}
    if len(index) != len(names):
        raise ValueError("%s: two tasks have the same name" % path)
    tasks = []
    for t in graph["tasks"]:
        task = {k: t[k] for k in SAME_ON_THE_WIRE if k in t}
        task.setdefault("labels", {})["name"] = t["name"]
        needs = {k: t[k] for k in NEEDS if k in t}
        if needs:
            task["needs"] = needs
        if "payload" in t:
            task["payload"] = t["payload"].encode()
        try:
            task["after"] = [index[a] for a in t.get("after", [])]
            task["inputs"] = []
            for param, source in t.get("inputs", {}).items():
                task_name, _, field = source.partition(".")
                task["inputs"].append({"param": param, "from": index[task_name],
                                       "field": field})
        except KeyError as e:
            raise ValueError("%s: task '%s' names %s, which is not a task of the graph"
                             % (path, t["name"], e))
        tasks.append(task)
    return names, tasks, graph.get("on_failure", "cancel_dependents")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--to", required=True, help="the head's endpoint")
    ap.add_argument("--count", type=int, default=200, help="tasks to submit")
    ap.add_argument("--kind", default="gemm", help="task kind (default gemm)")
    ap.add_argument("--params", default="{}",
                    help="task parameters, a JSON object (gemm: over size and seed)")
    ap.add_argument("--size", type=int, default=32, help="gemm matrix size")
    ap.add_argument("--priority", type=int, default=1, help="the tasks' priority (default 1)")
    ap.add_argument("--preemptible", action="store_true",
                    help="the tasks may be stopped for more urgent ones and queued again "
                    "(docs/preemption.md)")
    ap.add_argument("--gang", action="store_true",
                    help="the --count tasks run on distinct workers all at once, or are refused "
                    "whole (docs/reservations.md)")
    ap.add_argument("--graph", help="a task graph file (docs/graphs.md) instead of --count "
                    "tasks of --kind")
    ap.add_argument("--timeout", type=float, default=0.0,
                    help="seconds to wait for all results, 0: no limit (--head-timeout bounds "
                    "the wait for a silent head)")
    ap.add_argument("--resync", type=float, default=1.0,
                    help="seconds between sending unanswered submits again, and of silence "
                    "before asking the head about outstanding tasks")
    ap.add_argument("--head-timeout", type=float, default=60.0,
                    help="seconds without a message from the head before outstanding tasks end "
                    "failed (head_unreachable)")
    ap.add_argument("--key", help="this client's key pair file (troupe keygen), for a head with "
                    "keys; with --head-key")
    ap.add_argument("--head-key", help="the head's public key file (its KEY.pub)")
    ap.add_argument("--verbose", action="store_true",
                    help="what it does about the head's restarts and silences, on stderr")
    args = ap.parse_args()

    extra = json.loads(args.params)
    if not isinstance(extra, dict):
        ap.error("--params: expected a JSON object")
    if args.kind == "gemm":
        params = [dict({"size": args.size, "seed": i}, **extra) for i in range(args.count)]
    else:
        params = [dict(extra) for _ in range(args.count)]
    tasks = [{"kind": args.kind, "params": p, "priority": args.priority} for p in params]
    if args.preemptible:
        for t in tasks:
            t["preemptible"] = True
    names, on_failure = None, None
    if args.graph and args.gang:
        ap.error("--gang and --graph: a gang is --count tasks of --kind")
    if args.graph:
        try:
            names, tasks, on_failure = graph_tasks(args.graph)
        except (OSError, ValueError, KeyError) as e:
            print("python client: %s" % e, file=sys.stderr)
            return 2
    log = (lambda msg: print("python client: %s" % msg, file=sys.stderr)) if args.verbose else None
    keys = None
    if bool(args.key) != bool(args.head_key):
        ap.error("--key and --head-key go together")
    if args.key:
        keys = (read_key(args.key, "public_key"), read_key(args.key, "secret_key"),
                read_key(args.head_key, "public_key"))
    client = Client(args.to, resync_s=args.resync, head_timeout_s=args.head_timeout, log=log,
                    keys=keys)
    code = 0
    try:
        results = client.run(tasks, args.timeout, on_failure, args.gang)
    except TimeoutError as e:
        print("python client: %s" % e, file=sys.stderr)
        return 2
    except HeadUnreachable as e:
        results = e.args[0]
        code = 2
    except RuntimeError as e:
        print("python client: %s" % e, file=sys.stderr)
        return 1
    failed = 0
    for pos, (spec, r) in enumerate(zip(tasks, results)):
        failed += r["outcome"] != "completed"
        line = {"id": r["id"], "outcome": r["outcome"], "code": r["code"],
                "values": r.get("values", {}), "attempts": r.get("attempts", 0)}
        if r["outcome"] != "completed" and r.get("message"):
            line["message"] = r["message"]
        if names:
            line["name"] = names[pos]
        else:
            line["seed"] = spec.get("params", {}).get("seed")
        print(json.dumps(line))
    if code:
        print("python client: no message from the head for %.0f s: %d task(s) failed "
              "head_unreachable" % (args.head_timeout, sum(r["code"] == "head_unreachable"
                                                          for r in results)), file=sys.stderr)
    if args.verbose:
        print("python client: %d results, %s" % (len(results), json.dumps(client.stats)),
              file=sys.stderr)
    return code or (1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())
