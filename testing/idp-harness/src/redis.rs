//! A real `redis-server` (or `valkey-server`) on 127.0.0.1 for tests of the shared store.
//!
//! Started on a free port with persistence off (`--save ""`, `--appendonly no`), no config file
//! and a working directory of its own; killed when dropped. [`RedisServer::stop`] and
//! [`RedisServer::restart`] let a test take the store away mid-run and bring it back on the same
//! port. `scripts/test.sh` installs the server from the system's package manager when missing.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mcp_auth_idp_harness::HarnessError> {
//! use mcp_auth_idp_harness::redis::RedisServer;
//! let mut redis = RedisServer::start().await?;
//! let url = redis.url(); // redis://127.0.0.1:PORT/0
//! redis.stop().await?;
//! redis.restart().await?;
//! # let _ = url; Ok(()) }
//! ```

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::HarnessError;

/// How long the server may take to answer `PING` after it was spawned.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running Redis (or Valkey) server for one test. Dropping it kills the process.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    binary: String,
    dir: std::path::PathBuf,
}

/// The server binary: `MCP_AUTH_TEST_REDIS_SERVER`, else `redis-server`, else `valkey-server`.
fn find_binary() -> Result<String, HarnessError> {
    if let Ok(b) = std::env::var("MCP_AUTH_TEST_REDIS_SERVER") {
        return Ok(b);
    }
    for candidate in ["redis-server", "valkey-server"] {
        let found = std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|p| p.join(candidate).is_file())
        });
        if found {
            return Ok(candidate.to_owned());
        }
    }
    Err(HarnessError::Protocol(
        "neither redis-server nor valkey-server is on PATH: run scripts/test.sh (it installs \
         redis-server) or apt-get install redis-server"
            .into(),
    ))
}

/// A port below the ephemeral range that no other caller in this process gets (see
/// [`crate::ports`]).
fn free_port() -> Result<u16, HarnessError> {
    Ok(crate::ports::try_free_port()?)
}

impl RedisServer {
    /// Starts a server on a free 127.0.0.1 port and waits until it answers `PING`.
    pub async fn start() -> Result<RedisServer, HarnessError> {
        let binary = find_binary()?;
        let dir = std::env::temp_dir().join(format!(
            "mcp-auth-redis-{}-{}",
            std::process::id(),
            free_port()?
        ));
        std::fs::create_dir_all(&dir)?;
        // A port found free may be taken before the server binds it: try a few.
        let mut last = None;
        for _ in 0..5 {
            let port = free_port()?;
            let mut server = RedisServer {
                child: None,
                port,
                binary: binary.clone(),
                dir: dir.clone(),
            };
            match server.spawn().await {
                Ok(()) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| HarnessError::Protocol("redis did not start".into())))
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The port it listens on (kept across [`Self::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (the store goes away, its data with it).
    pub async fn stop(&mut self) -> Result<(), HarnessError> {
        if let Some(mut c) = self.child.take() {
            c.kill().await?;
        }
        Ok(())
    }

    /// Starts the server again on the same port (empty: persistence is off).
    pub async fn restart(&mut self) -> Result<(), HarnessError> {
        self.stop().await?;
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn().await {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Runs one command (space-separated words, no quoting) and returns the raw RESP reply.
    pub async fn command(&self, words: &[&str]) -> Result<String, HarnessError> {
        let mut req = format!("*{}\r\n", words.len());
        for w in words {
            req.push_str(&format!("${}\r\n{}\r\n", w.len(), w));
        }
        let fut = async {
            let mut s = TcpStream::connect(("127.0.0.1", self.port)).await?;
            s.write_all(req.as_bytes()).await?;
            let mut buf = vec![0u8; 64 * 1024];
            let n = s.read(&mut buf).await?;
            Ok::<_, std::io::Error>(String::from_utf8_lossy(&buf[..n]).into_owned())
        };
        match tokio::time::timeout(Duration::from_secs(5), fut).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(HarnessError::Protocol("redis command timed out".into())),
        }
    }

    async fn spawn(&mut self) -> Result<(), HarnessError> {
        let mut child = Command::new(&self.binary)
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
                "--dir",
            ])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                return Err(HarnessError::Protocol(format!(
                    "{} exited at start ({status}) on port {}",
                    self.binary, self.port
                )));
            }
            if self
                .command(&["PING"])
                .await
                .is_ok_and(|r| r.starts_with("+PONG"))
            {
                self.child = Some(child);
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = child.kill().await;
                return Err(HarnessError::Protocol(format!(
                    "{} did not answer PING within {START_TIMEOUT:?}",
                    self.binary
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
