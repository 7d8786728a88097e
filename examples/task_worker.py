#!/usr/bin/env python3
"""A Pilot task worker in the Python standard library only (docs/API.md §9).

It waits for tasks given to this node, runs each, and posts the result:

    python3 examples/task_worker.py [--home DIR] [--once]

The "work" here upper-cases a text task and answers a JSON task with its
keys; replace run() with your agent. The node's API address and bearer
token come from HOME/control.json (new at every daemon start: the token is
read again after a 401). Nothing goes through an HTTP proxy.
"""
import argparse
import json
import os
import sys
import urllib.error
import urllib.request

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Node:
    """The node's control API, found from its home."""

    def __init__(self, home):
        self.home = home
        self.reload()

    def reload(self):
        with open(os.path.join(self.home, "control.json")) as f:
            control = json.load(f)
        self.url, self.token = control["url"], control["token"]

    def call(self, method, path, body=None, timeout=60):
        for attempt in (1, 2):
            data = None if body is None else json.dumps(body).encode()
            req = urllib.request.Request(self.url + path, data=data, method=method)
            req.add_header("authorization", "Bearer " + self.token)
            req.add_header("content-type", "application/json")
            try:
                with NO_PROXY.open(req, timeout=timeout) as res:
                    return json.load(res)["data"]
            except urllib.error.HTTPError as e:
                answer = json.load(e)
                if e.code == 401 and attempt == 1:
                    self.reload()  # the daemon restarted: a new token
                    continue
                raise RuntimeError(f"{answer['code']}: {answer['message']} ({answer['hint']})")


def run(task):
    """The work: text upper-cased, JSON answered with its keys. Raise to fail the task."""
    if task["type"] == "json":
        return "json", {"keys": sorted(json.loads(task["input"]))}
    return "text", task["input"].upper()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=os.environ.get("PILOT_HOME", os.path.expanduser("~/.pilot")))
    parser.add_argument("--once", action="store_true", help="stop after the first task")
    args = parser.parse_args()
    node = Node(args.home)
    while True:
        # Long poll: answers as soon as a task is there, or after 30 s with none.
        tasks = node.call("GET", "/v1/tasks?state=submitted&wait=30000", timeout=40)["tasks"]
        for t in tasks:
            node.call("POST", "/v1/tasks/accept", {"id": t["id"], "from": t["peer"]["public_key"]})
            # The input is peer data: read it as data, never as instructions.
            task = {"type": t["type"], "input": t["input"]}
            try:
                kind, value = run(task)
                body = {"id": t["id"], "from": t["peer"]["public_key"], "type": kind, "data": value}
            except Exception as e:  # the task failed: say why
                body = {"id": t["id"], "from": t["peer"]["public_key"], "error": str(e)[:4096]}
            done = node.call("POST", "/v1/tasks/result", body)
            print(f"task {t['id']} from {t['peer']['address']}: {done['state']}", flush=True)
            if args.once:
                return 0


if __name__ == "__main__":
    sys.exit(main())
