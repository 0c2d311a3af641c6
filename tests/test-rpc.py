#!/usr/bin/env python3
"""--rpc: the model's layers on two ggml rpc-servers (built from the pinned llama.cpp), on
loopback. Greedy output over RPC equals a local run token for token (the reasoning, the
answer and the token count, in every mode that is deterministic at temperature 0), the
layers really are on the servers (llama.cpp's own log), and wrong servers are clear errors.

usage: test-rpc.py MUSE RPC_SERVER   (models: Muse-Tiny and the generated smoke model)
"""
import json
import os
import socket
import subprocess
import sys
import time

muse, rpc_server = sys.argv[1:3]
tiny, smoke = "tiny", "smoke"
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_rpc_server():
    """Starts one rpc-server; returns (process, "127.0.0.1:PORT") once its port answers."""
    for _ in range(5):  # a port taken between free_port() and the bind: try another
        port = free_port()
        p = subprocess.Popen([rpc_server, "-H", "127.0.0.1", "-p", str(port), "-t", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and p.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return p, "127.0.0.1:%d" % port
            except OSError:
                time.sleep(0.05)  # polling a port that is not yet bound
        p.kill()
        p.wait()
    raise SystemExit("rpc-server did not start listening")


def ask(model, mode, prompt, rpc=None, extra=()):
    cmd = [muse, "ask", "--model", model, "--mode", mode, "--temp", "0", "--threads", "1",
           "--max-tokens", "48", "--budget", "256", "--json", *extra, prompt]
    if rpc:
        cmd[2:2] = ["--rpc", rpc]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return r


servers = [start_rpc_server(), start_rpc_server()]
endpoints = ",".join(ep for _, ep in servers)
try:
    # Greedy: the same tokens locally and over RPC. Muse-Tiny answers (so a wrong layer shows
    # as a wrong sum); the random model produces long, arbitrary token streams.
    cases = [(tiny, "thinking", "What is 487 + 356?"), (tiny, "instant", "What is 9041 - 3977?"),
             (smoke, "thinking", "Tell me about the sea."), (smoke, "instant", "Pick a colour.")]
    for model, mode, prompt in cases:
        local = ask(model, mode, prompt)
        remote = ask(model, mode, prompt, rpc=endpoints)
        name = "%s %s" % (model, mode)
        check(local.returncode == 0 and remote.returncode == 0,
              "%s: both runs succeed (%d, %d) %s" % (name, local.returncode, remote.returncode, remote.stderr.strip()[-300:]))
        if local.returncode or remote.returncode:
            continue
        a, b = json.loads(local.stdout), json.loads(remote.stdout)
        ta, tb = a["usage"]["completion_tokens"], b["usage"]["completion_tokens"]
        check(ta > 0 and ta == tb, "%s: %d tokens locally, %d over RPC" % (name, ta, tb))
        check(a["reasoning_content"] == b["reasoning_content"] and a["content"] == b["content"],
              "%s: the same reasoning and answer over RPC (%r)" % (name, b["content"][:60]))
        if model == tiny and mode == "thinking":
            check(b["content"].strip().endswith("843"), "Muse-Tiny over RPC: 487 + 356 = 843 (%r)" % b["content"])
    # Contemplating's agents decode in one batch whose make-up depends on timing, so its tokens
    # are not reproducible even locally; over RPC it runs and every agent answers.
    r = ask(tiny, "contemplating", "What is 1234 + 4321?", rpc=endpoints,
            extra=("--agents", "3", "--no-planner", "--temp", "1", "--seed", "3"))
    agents = json.loads(r.stdout)["agents"] if r.returncode == 0 else []
    check(r.returncode == 0 and len([a for a in agents if a.get("role") != "planner"]) >= 3,
          "contemplating over RPC: %d agents ran (%s)" % (len(agents), r.stderr.strip()[-200:]))

    # The layers are on the servers: llama.cpp's own log names the devices it assigned.
    r = subprocess.run([muse, "ask", "--model", tiny, "--rpc", endpoints, "--mode", "instant", "--max-tokens", "4",
                        "--verbose", "What is 1 + 1?"], capture_output=True, text=True, timeout=300)
    log = r.stderr
    check(r.returncode == 0 and "assigned to device RPC0" in log and "assigned to device RPC1" in log,
          "layers are assigned to both RPC servers (llama.cpp's log)")

    # Errors: each names the server and says what to do.
    closed = "127.0.0.1:%d" % free_port()
    r = subprocess.run([muse, "ask", "--model", tiny, "--rpc", closed, "What is 1 + 1?"],
                       capture_output=True, text=True, timeout=120)
    check(r.returncode == 1 and closed in r.stderr and "Failed to connect" in r.stderr and "Thread" not in r.stderr,
          "a closed port: exit 1 naming it, no backtrace (%d: %s)" % (r.returncode, r.stderr.strip()))
    for bad, why in [("127.0.0.1:0", "port"), ("127.0.0.1", "HOST:PORT"), ("[::1]:50052", "IPv6"),
                     (endpoints.split(",")[0] + "," + endpoints.split(",")[0], "twice"), ("bad host:1", "host"),
                     (",".join("127.0.0.1:%d" % (1000 + i) for i in range(17)), "at most 16")]:
        r = subprocess.run([muse, "ask", "--model", tiny, "--rpc", bad, "x"], capture_output=True, text=True, timeout=60)
        check(r.returncode == 2 and "--rpc" in r.stderr and why in r.stderr,
              "--rpc %s: usage error naming %s (%d: %s)" % (bad[:40], why, r.returncode, r.stderr.strip()[:160]))

    # Something that listens but is not an rpc-server: no answer within the deadline, not a hang
    # and not an abort.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        ep = "127.0.0.1:%d" % silent.getsockname()[1]
        t0 = time.monotonic()
        r = subprocess.run([muse, "ask", "--model", tiny, "--rpc", ep, "x"], capture_output=True, text=True, timeout=120)
        check(r.returncode == 1 and "no answer within" in r.stderr and time.monotonic() - t0 < 60,
              "a silent listener: exit 1 after the deadline (%s)" % r.stderr.strip())

    # muse serve --rpc says where the layers are; --backend with --rpc is refused.
    p = subprocess.Popen([muse, "serve", "--model", tiny, "--rpc", endpoints, "--port", "0", "--data-dir", ":memory:",
                          "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        for line in p.stdout:  # ends when serve exits; it prints "listening on" once ready
            seen.append(line)
            if line.startswith("listening on"):
                break
    finally:
        p.terminate()
        p.wait(timeout=60)
    out = "".join(seen)
    check("layers on RPC servers: " + endpoints.replace(",", ", ") in out, "muse serve prints the RPC servers (%s)" % out.strip()[-200:])
    # The local model on RPC beside a remote server: the server is checked at startup too.
    closed = "http://127.0.0.1:%d" % free_port()
    r = subprocess.run([muse, "serve", "--model", tiny, "--rpc", endpoints, "--backend", closed, "--port", "0", "--data-dir", ":memory:"],
                       capture_output=True, text=True, timeout=120)
    check(r.returncode == 1 and closed in r.stderr and "cannot be reached" in r.stderr,
          "muse serve --rpc with an unreachable --backend: exit 1 naming it (%s)" % r.stderr.strip()[-200:])
finally:
    for p, _ in servers:
        p.kill()
        p.wait()

if failures:
    print("%d failed" % len(failures))
    sys.exit(1)
print("all passed")
