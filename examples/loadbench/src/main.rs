//! End-to-end load bench of the todo MCP server (issue 9), driven by `scripts/load-bench.sh`.
//!
//! Subcommands (each a long-running process the script starts and stops):
//!
//! - `issuer`: a development issuer (`DevIssuer`) serving its JWKS on loopback and writing the
//!   tokens the load generator sends (one repeated token, and N distinct "fresh" ones).
//! - `idp`: the real test IdP (`oidc-provider`, through `mcp-auth-idp-harness`) with an opaque-token
//!   resource; writes its introspection settings and one opaque access token.
//! - `serve`: the todo MCP app (stateless JSON answers unless `--sessions` / `--sse`) in one of
//!   the modes `unprotected` (the same app without its auth layers), `jwt` (JWKS fetched from
//!   the issuer, token cache on), `introspect`, or `trivial` (the whole auth stack around a
//!   verifier that costs nothing, to tell the layers' cost from verification's). The shipped
//!   `todo` binary itself is run by the script, not by this subcommand.
//! - `load`: a closed-loop HTTP/1.1 load generator sending a protected `tools/call` over N
//!   keep-alive connections for a fixed time, as an MCP client would (session handshake with
//!   `--sessions`, JSON or event-stream answers), printing requests/s, p50 and p99; with
//!   `--connections 1` it measures sequential requests on one keep-alive connection.
//!
//! Loopback only: every address is checked to be a loopback one.

mod args;
mod load;
mod serve;
mod tokens;

use std::process::ExitCode;

const USAGE: &str = "usage: loadbench <issuer|idp|serve|load> [--flag value]...
  issuer --bind 127.0.0.1:PORT --audience URL --out DIR [--fresh N] [--threads N]
  idp    --resource URL --out DIR
  serve  --mode unprotected|trivial|jwt|introspect --bind 127.0.0.1:PORT [--sessions] [--sse]
         [--jwks-uri URL --issuer URL] [--cache-bytes N]
         [--introspect-endpoint URL --client-id ID --client-secret S --issuer URL]
  load   --url URL --tokens FILE [--fresh] [--offset 0] [--sessions] [--connections 16]
         [--duration 10] [--warmup 2] [--threads 1] [--tool list_todos]
         [--protocol-version 2025-06-18] [--client-nodelay true]";

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1);
    let Some(cmd) = argv.next() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let args = match args::Args::parse(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadbench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match cmd.as_str() {
        "issuer" => tokens::issuer(&args),
        "idp" => tokens::idp(&args),
        "serve" => serve::serve(&args),
        "load" => load::load(&args),
        _ => Err(format!("unknown subcommand {cmd:?}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadbench {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}
