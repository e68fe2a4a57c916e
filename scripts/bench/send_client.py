"""The client side of send_callgrind.sh and worker_cost.sh: registers two users (--pairs P:
2P users, P private conversations), then sends N private messages over keep-alive
connections, C at a time (threads), the pairs in turn, and exits. Standard library
only, so that it runs with any Python beside a gateway under valgrind."""
from __future__ import annotations

import argparse
import http.client
import itertools
import json
import threading
import time
import uuid


def call(connection, method, path, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    response = connection.getresponse()
    return response.status, json.loads(response.read() or b"null")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sends", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--pairs", type=int, default=1)
    args = parser.parse_args()
    deadline = time.monotonic() + 600
    while True:
        try:
            setup = http.client.HTTPConnection("127.0.0.1", args.port, timeout=120)
            status, _ = call(setup, "GET", "/healthz")
            if status == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the gateway did not come up")
        time.sleep(0.5)
    names = [f"cg{uuid.uuid4().hex[:10]}" for _ in range(2 * args.pairs)]
    ids, tokens = [], []
    for name in names:
        _, user = call(setup, "POST", "/api/v1/users/register", {"username": name, "password": "password-123"})
        _, login = call(setup, "POST", "/api/v1/users/login", {"username": name, "password": "password-123"})
        ids.append(user["user_id"])
        tokens.append(login["token"])
    per_thread = args.sends // args.concurrency
    turns = itertools.count()  # next() of a count is atomic under the GIL

    def sender() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=120)
        for index in range(per_thread):
            pair = next(turns) % args.pairs
            status, _ = call(connection, "POST", "/api/v1/messages",
                             {"to_user_id": ids[2 * pair + 1], "content": f"message {index}"}, tokens[2 * pair])
            assert status == 201, status

    threads = [threading.Thread(target=sender) for _ in range(args.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
