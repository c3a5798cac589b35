"""A real MCP server built with the official `mcp` Python SDK (pinned in requirements.txt: mcp==2.3.0), used by
tests/tools/test_mcp.cpp to check qnext's MCP client against the reference implementation over stdio.

Tools (tools/list is paged, PAGE_SIZE tools per page, so the client must follow nextCursor):
  add(a, b)            -> the sum as text
  echo(text)           -> the text
  fail(message)        -> a result with isError: true
  sleep(seconds)       -> sleeps; if the client cancels (notifications/cancelled), writes "<marker dir>/cancelled"
  crash(code)          -> the process exits immediately with that code (crash + restart tests)
  instance()           -> a random token chosen when this server process started (to see a restart)
  structured()         -> structuredContent only, plus an image block
  book_flight(...)     -> a schema with $defs, $ref and additionalProperties (must reach the model unchanged)
  env(name)            -> the value of an environment variable ("" if unset)
  filler_0..filler_4   -> padding so that there are several pages

Run: python3 mcp_server.py [MARKER_DIR]   (writes MARKER_DIR/clean_exit when it returns after stdin closes)
"""
import os
import sys

import anyio
import mcp_types as types
from mcp.server.lowlevel.server import Server
from mcp.server.stdio import stdio_server

PAGE_SIZE = 4
MARKER_DIR = sys.argv[1] if len(sys.argv) > 1 else None
INSTANCE = os.urandom(8).hex()


def obj(props, required=()):
    return {"type": "object", "properties": props, "required": list(required), "additionalProperties": False}


TOOLS = [
    types.Tool(name="add", description="Add two integers.",
               input_schema=obj({"a": {"type": "integer"}, "b": {"type": "integer"}}, ["a", "b"])),
    types.Tool(name="echo", description="Echo the text back.", input_schema=obj({"text": {"type": "string"}}, ["text"])),
    types.Tool(name="fail", description="Always fails with the message.",
               input_schema=obj({"message": {"type": "string"}}, ["message"])),
    types.Tool(name="sleep", description="Sleep for some seconds.",
               input_schema=obj({"seconds": {"type": "number"}}, ["seconds"])),
    types.Tool(name="crash", description="Exit the server process.",
               input_schema=obj({"code": {"type": "integer"}}, ["code"])),
    types.Tool(name="instance", description="A token that identifies this server process.", input_schema=obj({})),
    types.Tool(name="structured", description="Structured content only.", input_schema=obj({})),
    types.Tool(
        name="book_flight", description="Book a flight.",
        input_schema={
            "type": "object",
            "$defs": {"airport": {"type": "string", "pattern": "^[A-Z]{3}$"},
                      "passenger": {"type": "object", "properties": {"name": {"type": "string"},
                                                                      "age": {"type": "integer", "minimum": 0}},
                                    "required": ["name"], "additionalProperties": False}},
            "properties": {"from": {"$ref": "#/$defs/airport"}, "to": {"$ref": "#/$defs/airport"},
                           "passengers": {"type": "array", "items": {"$ref": "#/$defs/passenger"}, "minItems": 1}},
            "required": ["from", "to", "passengers"],
            "additionalProperties": False,
        }),
    types.Tool(name="env", description="Read an environment variable.",
               input_schema=obj({"name": {"type": "string"}}, ["name"])),
] + [types.Tool(name=f"filler_{i}", description=f"Filler tool {i}.", input_schema=obj({})) for i in range(5)]


def text(s, is_error=False):
    return types.CallToolResult(content=[types.TextContent(type="text", text=s)], is_error=is_error)


async def list_tools(ctx, params):
    start = int(params.cursor) if params is not None and params.cursor else 0
    page = TOOLS[start:start + PAGE_SIZE]
    nxt = str(start + PAGE_SIZE) if start + PAGE_SIZE < len(TOOLS) else None
    return types.ListToolsResult(tools=page, next_cursor=nxt)


async def call_tool(ctx, params):
    name, args = params.name, params.arguments or {}
    if name == "add":
        return text(str(args["a"] + args["b"]))
    if name == "echo":
        return text(args["text"])
    if name == "fail":
        return text(args["message"], is_error=True)
    if name == "sleep":
        try:
            await anyio.sleep(float(args["seconds"]))
        except anyio.get_cancelled_exc_class():
            if MARKER_DIR:
                with open(os.path.join(MARKER_DIR, "cancelled"), "w") as f:
                    f.write("cancelled\n")
            raise
        return text("slept")
    if name == "crash":
        sys.stderr.write("crashing on purpose\n")
        sys.stderr.flush()
        os._exit(int(args["code"]))
    if name == "instance":
        return text(INSTANCE)
    if name == "structured":
        return types.CallToolResult(content=[types.ImageContent(type="image", data="iVBORw0KGgo=", mime_type="image/png")],
                                    structured_content={"temperature": 21.5, "unit": "C"})
    if name == "env":
        return text(os.environ.get(args["name"], ""))
    if name.startswith("filler_"):
        return text(name)
    return text(f"unknown tool {name}", is_error=True)


server = Server("qnext-test-server", version="1.0.0", on_list_tools=list_tools, on_call_tool=call_tool)


async def main():
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
    if MARKER_DIR:  # reached only when stdin was closed (a signal would have killed us first)
        with open(os.path.join(MARKER_DIR, "clean_exit"), "w") as f:
            f.write("clean\n")
