"""A deliberately misbehaving MCP stdio server (standard library only, so it starts fast and runs inside the
sandbox with the system python3). Used by tests/tools/test_mcp.cpp to check that qnext's MCP client survives
broken servers. Usage: python3 mcp_broken_server.py MODE [MARKER_DIR]

Modes:
  good          a correct minimal server: tools "echo", "slow" and "probe" (does a path exist?); answers ping;
                pages tools/list (1 tool per page)
  badjson       correct handshake, then answers tools/call with a line that is not JSON
  crash_init    exits with code 3 when it receives initialize
  hang_init     never answers initialize
  hang_call     correct handshake, never answers tools/call; writes MARKER_DIR/cancelled_<id> on
                notifications/cancelled
  crash_call    correct handshake, exits with code 7 on every tools/call; appends to MARKER_DIR/starts per start
  ignore_term   correct handshake; ignores SIGTERM and stdin EOF (shutdown must escalate to SIGKILL)
  old_version   answers initialize with protocolVersion "1999-01-01"
  ping_first    before answering tools/call, sends the client a ping request and waits for its answer
  no_tools      declares no tools capability
  garbage_banner prints a non-JSON banner line on stdout before anything else
"""
import json
import os
import signal
import sys
import time

MODE = sys.argv[1]
MARKER = sys.argv[2] if len(sys.argv) > 2 else None


def send(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def marker(name, text="x\n", append=False):
    """Writes MARKER_DIR/name. A new marker appears complete (written aside, then renamed): the tests poll for the
    file and read it at once, and an open-then-write could be seen empty."""
    if not MARKER:
        return
    path = os.path.join(MARKER, name)
    if append:
        with open(path, "a") as f:
            f.write(text)
        return
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


TOOLS = [
    {"name": "echo", "description": "Echo text.",
     "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}},
    {"name": "slow", "description": "Never answers.",
     "inputSchema": {"type": "object", "properties": {}}},
    {"name": "probe", "description": "Does a path exist (as seen by the server)?",
     "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}},
]

if MODE == "ignore_term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if MODE == "crash_call":
    marker("starts", "start\n", append=True)
if MODE == "garbage_banner":
    sys.stdout.write("Starting server v1.0...\n")
    sys.stdout.flush()

for line in sys.stdin:
    msg = json.loads(line)
    method, mid = msg.get("method"), msg.get("id")
    if method == "initialize":
        if MODE == "crash_init":
            sys.stderr.write("fatal: cannot initialize\n")
            sys.exit(3)
        if MODE == "hang_init":
            continue
        version = "1999-01-01" if MODE == "old_version" else msg["params"]["protocolVersion"]
        caps = {} if MODE == "no_tools" else {"tools": {}}
        send({"jsonrpc": "2.0", "id": mid, "result": {"protocolVersion": version, "capabilities": caps,
                                                     "serverInfo": {"name": "broken-" + MODE, "version": "0"}}})
    elif method == "notifications/initialized":
        marker("initialized")
    elif method == "tools/list":
        cursor = int((msg.get("params") or {}).get("cursor") or 0)
        result = {"tools": TOOLS[cursor:cursor + 1]}
        if cursor + 1 < len(TOOLS):
            result["nextCursor"] = str(cursor + 1)
        send({"jsonrpc": "2.0", "id": mid, "result": result})
    elif method == "tools/call":
        if MODE == "badjson":
            sys.stdout.write("{this is not json\n")
            sys.stdout.flush()
        elif MODE in ("hang_call",) or msg["params"]["name"] == "slow":
            continue
        elif MODE == "crash_call":
            sys.stderr.write("segfault (pretend)\n")
            sys.stderr.flush()
            os._exit(7)
        else:
            if MODE == "ping_first":
                send({"jsonrpc": "2.0", "id": "srv-1", "method": "ping"})
                reply = json.loads(sys.stdin.readline())
                if reply.get("id") != "srv-1" or reply.get("result") != {}:
                    send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32000, "message": "bad ping reply"}})
                    continue
            args = msg["params"]["arguments"]
            text = str(os.path.exists(args["path"])) if msg["params"]["name"] == "probe" else args.get("text", "")
            send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": text}]}})
    elif method == "notifications/cancelled":
        marker("cancelled_" + str(msg["params"]["requestId"]), msg["params"].get("reason", "") + "\n")
    elif method == "ping":
        send({"jsonrpc": "2.0", "id": mid, "result": {}})
    elif mid is not None:
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "Method not found"}})

# stdin closed
marker("stdin_closed")
if MODE == "ignore_term":
    while True:
        time.sleep(1)
