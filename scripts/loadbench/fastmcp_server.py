"""FastMCP reference server for scripts/load-bench.sh: the todo `list_todos` tool, stateless
HTTP with JSON responses, protected by FastMCP's JWTVerifier against the same JWKS, issuer,
audience and scope as the Rust server under test.

usage: fastmcp_server.py PORT JWKS_URI ISSUER AUDIENCE
"""

import json
import sys

import uvicorn
from fastmcp import FastMCP
from fastmcp.server.auth.providers.jwt import JWTVerifier
from fastmcp.server.dependencies import get_access_token

port, jwks_uri, issuer, audience = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]

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


app = mcp.http_app(path="/mcp", stateless_http=True, json_response=True)
print(f"READY http://127.0.0.1:{port}/mcp", flush=True)
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
