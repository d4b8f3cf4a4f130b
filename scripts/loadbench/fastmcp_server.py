"""FastMCP reference server for scripts/load-bench.sh: the todo `list_todos` tool, protected by
FastMCP's JWTVerifier against the same JWKS, issuer, audience and scope as the Rust server under
test, served by uvicorn as FastMCP's documentation serves it.

usage: fastmcp_server.py PORT JWKS_URI ISSUER AUDIENCE MODE
  MODE sessions   FastMCP's defaults: sessions, answers as server-sent event streams
       stateless  stateless_http=True, answers as server-sent event streams
       json       stateless_http=True, json_response=True
"""

import json
import sys

import fastmcp
import uvicorn
from fastmcp import FastMCP
from fastmcp.server.auth.providers.jwt import JWTVerifier
from fastmcp.server.dependencies import get_access_token

port, jwks_uri, issuer, audience, mode = (
    int(sys.argv[1]),
    sys.argv[2],
    sys.argv[3],
    sys.argv[4],
    sys.argv[5],
)
if mode not in ("sessions", "stateless", "json"):
    sys.exit(f"unknown mode {mode!r}")

verifier = JWTVerifier(
    jwks_uri=jwks_uri,
    issuer=issuer,
    audience=audience,
    algorithm="RS256",
    required_scopes=["todo:read"],
    base_url=f"http://127.0.0.1:{port}",
)
mcp = FastMCP("todo", auth=verifier)
lists: dict[str, list] = {}


@mcp.tool
def list_todos() -> str:
    """List your todos (needs todo:read)."""
    token = get_access_token()
    owner = (token.claims or {}).get("sub", "") if token else ""
    return json.dumps(lists.get(owner, []))


app = mcp.http_app(
    path="/mcp",
    stateless_http=mode != "sessions",
    json_response=mode == "json",
)
print(f"READY http://127.0.0.1:{port}/mcp fastmcp {fastmcp.__version__}", flush=True)
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
