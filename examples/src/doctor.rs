//! `todo doctor`: reads the server's environment, builds the same provider and policy, and prints
//! core's [diagnosis](mcp_auth_core::diagnose): the configuration, each issuer (metadata, keys,
//! PKCE, registration, scopes), and with a token every check, expected versus found, and the
//! exact HTTP answers the server would give.
//!
//! The token is read from standard input (`--token -`) or a file (`--token-file PATH`), never
//! from an argument (arguments show in `ps` and in shell history), and is never printed.
//!
//! Exit status: 0 when the server side is ready and the token, if given, is accepted; 1 when
//! not; 2 on a usage error. Client-flow findings (no `S256`, no registration, a tool the token
//! may not call) are warnings and leave the status alone.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use mcp_auth_core::config::CoreConfig;
use mcp_auth_core::diagnose::diagnose;

use crate::app::MAX_BODY_BYTES;
use crate::providers;
use crate::todo::{Store, TodoServer, policy};

/// Largest token read (stdin or file).
pub const MAX_TOKEN_INPUT: u64 = 64 * 1024;

/// Usage of the subcommand.
pub const USAGE: &str = "usage: todo doctor [--token - | --token-file PATH] [--bind HOST:PORT]\n\
    The token is read from standard input (--token -) or a file, never from an argument.";

/// Where the token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// No token: configuration and issuers only.
    None,
    /// Standard input.
    Stdin,
    /// A file.
    File(PathBuf),
}

/// The parsed arguments of `todo doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoctorArgs {
    /// Where the token comes from.
    pub token: TokenSource,
    /// The bind address the resource URL defaults from (`--bind`, `TODO_BIND`).
    pub bind: Option<String>,
}

/// Parses the arguments after `doctor`. A token given as an argument is refused, and the error
/// does not repeat it.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<DoctorArgs, String> {
    let mut parsed = DoctorArgs {
        token: TokenSource::None,
        bind: None,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--token" => match args.next().as_deref() {
                Some("-") => parsed.token = TokenSource::Stdin,
                _ => {
                    return Err(format!(
                        "--token takes only `-` (standard input): a token in an argument shows \
                         in ps and shell history\n{USAGE}"
                    ));
                }
            },
            "--token-file" => match args.next() {
                Some(p) => parsed.token = TokenSource::File(p.into()),
                None => return Err(format!("--token-file needs a path\n{USAGE}")),
            },
            "--bind" => parsed.bind = args.next(),
            other if other.starts_with("--token=") => {
                return Err(format!(
                    "--token takes only `-` (standard input), never the token itself\n{USAGE}"
                ));
            }
            other if other.starts_with("--token-file=") => {
                parsed.token = TokenSource::File(other["--token-file=".len()..].into());
            }
            other if other.starts_with("--bind=") => {
                parsed.bind = Some(other["--bind=".len()..].to_owned());
            }
            _ => return Err(format!("unknown argument to doctor\n{USAGE}")),
        }
    }
    Ok(parsed)
}

fn read_token(source: &TokenSource) -> Result<Option<String>, String> {
    let mut raw = String::new();
    match source {
        TokenSource::None => return Ok(None),
        TokenSource::Stdin => {
            std::io::stdin()
                .take(MAX_TOKEN_INPUT + 1)
                .read_to_string(&mut raw)
                .map_err(|e| format!("reading the token from standard input: {e}"))?;
        }
        TokenSource::File(path) => {
            std::fs::File::open(path)
                .and_then(|f| f.take(MAX_TOKEN_INPUT + 1).read_to_string(&mut raw))
                .map_err(|e| format!("reading the token file {}: {e}", path.display()))?;
        }
    }
    if raw.len() as u64 > MAX_TOKEN_INPUT {
        return Err(format!("the token input is over {MAX_TOKEN_INPUT} bytes"));
    }
    let token = raw.trim();
    let token = token.strip_prefix("Bearer ").unwrap_or(token).trim();
    if token.is_empty() {
        return Err("the token input is empty".into());
    }
    Ok(Some(token.to_owned()))
}

/// Runs `todo doctor` with the arguments after `doctor`; prints to standard output.
pub async fn run<I: IntoIterator<Item = String>>(args: I) -> ExitCode {
    let args = match parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let token = match read_token(&args.token) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match diagnose_env(args.bind, token.as_deref()).await {
        Ok(text) => {
            print!("{}", text.0);
            if text.1 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            // The same layout as every other line: status label, then what was checked.
            println!("[FAIL] configuration: {e}");
            println!("\nresult: NOT ready: the configuration does not load");
            ExitCode::FAILURE
        }
    }
}

async fn diagnose_env(
    bind: Option<String>,
    token: Option<&str>,
) -> Result<(String, bool), Box<dyn std::error::Error>> {
    let kind = providers::select_kind()?;
    let bind = bind
        .or_else(|| std::env::var("TODO_BIND").ok())
        .unwrap_or_else(|| "127.0.0.1:8000".to_owned());
    let bind: SocketAddr = bind
        .parse()
        .map_err(|e| format!("TODO_BIND (--bind): {bind:?} is not HOST:PORT: {e}"))?;
    let resource = providers::resource_url(&CoreConfig::from_env()?, bind)?;
    let selected = providers::build(kind, &resource).await?;
    let provider = selected.provider.clone();
    let policy = policy(&*provider, MAX_BODY_BYTES)?;
    let tools: Vec<String> = TodoServer::new(Arc::new(Store::default()))
        .router()
        .list_all()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    let d = diagnose(kind.name(), &*provider, Some(&policy), &tools, token).await;
    Ok((d.to_string(), d.is_ready()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_token_in_an_argument_is_refused_without_repeating_it() {
        for bad in [
            &["--token", "eyJhbGciOi.secret.sig"][..],
            &["--token=eyJhbGciOi.secret.sig"],
        ] {
            let e = parse_args(args(bad)).unwrap_err();
            assert!(e.contains("--token takes only `-`"), "{e}");
            assert!(!e.contains("secret"), "{e}");
        }
        assert_eq!(
            parse_args(args(&["--token", "-"])).unwrap().token,
            TokenSource::Stdin
        );
        assert_eq!(
            parse_args(args(&["--token-file", "/tmp/t"])).unwrap().token,
            TokenSource::File("/tmp/t".into())
        );
        assert!(parse_args(args(&["--what"])).is_err());
    }
}
