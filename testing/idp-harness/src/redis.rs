//! A real `redis-server` (or `valkey-server`) on 127.0.0.1 for tests of the shared store.
//!
//! Started on a free port with persistence off (`--save ""`, `--appendonly no`), no config file
//! and a working directory of its own; killed when dropped. [`RedisServer::stop`] and
//! [`RedisServer::restart`] let a test take the store away mid-run and bring it back on the same
//! port. `scripts/test.sh` installs the server from the system's package manager when missing.
//!
//! [`RedisServer::start_tls`] starts the variant a production store should be: TLS only (no
//! plain port), with a server certificate issued at start by a throwaway CA (for `127.0.0.1`
//! and `localhost`), and ACL credentials required (the `default` user off, one user with a
//! password).
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
    tls: Option<TlsAcl>,
}

/// What a TLS + ACL server was started with.
#[derive(Debug, Clone)]
struct TlsAcl {
    ca_pem: String,
    user: String,
    password: String,
}

/// A fresh CA: its certificate (PEM) and the issuer that signs with it.
fn new_ca(name: &str) -> Result<(String, rcgen::Issuer<'static, rcgen::KeyPair>), HarnessError> {
    let e = |e: rcgen::Error| HarnessError::Protocol(format!("certificate generation: {e}"));
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate().map_err(e)?;
    let cert = params.self_signed(&key).map_err(e)?;
    Ok((cert.pem(), rcgen::Issuer::new(params, key)))
}

/// The PEM certificate of a CA generated now, that signed nothing: trusting it instead of the
/// server's CA must make the TLS handshake fail.
pub fn unrelated_ca_pem() -> Result<String, HarnessError> {
    Ok(new_ca("mcp-auth unrelated test CA")?.0)
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
                tls: None,
            };
            match server.spawn().await {
                Ok(()) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| HarnessError::Protocol("redis did not start".into())))
    }

    /// Starts a TLS-only server (no plain port) that requires ACL credentials: the `default`
    /// user is off, `user` with `password` may run every command on every key. Its certificate,
    /// for `127.0.0.1` and `localhost`, is signed by a CA generated now ([`Self::ca_pem`]); TLS
    /// client certificates are not asked for.
    pub async fn start_tls(user: &str, password: &str) -> Result<RedisServer, HarnessError> {
        let binary = find_binary()?;
        let dir = std::env::temp_dir().join(format!(
            "mcp-auth-redis-tls-{}-{}",
            std::process::id(),
            free_port()?
        ));
        std::fs::create_dir_all(&dir)?;
        let (ca_pem, issuer) = new_ca("mcp-auth test CA")?;
        let e = |e: rcgen::Error| HarnessError::Protocol(format!("certificate generation: {e}"));
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .map_err(e)?;
        let key = rcgen::KeyPair::generate().map_err(e)?;
        let cert = params.signed_by(&key, &issuer).map_err(e)?;
        std::fs::write(dir.join("ca.pem"), &ca_pem)?;
        std::fs::write(dir.join("server.pem"), cert.pem())?;
        std::fs::write(dir.join("server.key"), key.serialize_pem())?;
        let tls = TlsAcl {
            ca_pem,
            user: user.to_owned(),
            password: password.to_owned(),
        };
        let mut last = None;
        for _ in 0..5 {
            let mut server = RedisServer {
                child: None,
                port: free_port()?,
                binary: binary.clone(),
                dir: dir.clone(),
                tls: Some(tls.clone()),
            };
            match server.spawn().await {
                Ok(()) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| HarnessError::Protocol("redis did not start".into())))
    }

    /// `redis://127.0.0.1:PORT/0`; for a [`Self::start_tls`] server,
    /// `rediss://USER:PASSWORD@127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        match &self.tls {
            None => format!("redis://127.0.0.1:{}/0", self.port),
            Some(t) => format!(
                "rediss://{}:{}@127.0.0.1:{}/0",
                t.user, t.password, self.port
            ),
        }
    }

    /// The PEM certificate of the CA that signed a [`Self::start_tls`] server's certificate.
    pub fn ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.ca_pem.as_str())
    }

    /// The file holding [`Self::ca_pem`] (removed with the server).
    pub fn ca_file(&self) -> Option<std::path::PathBuf> {
        self.tls.as_ref().map(|_| self.dir.join("ca.pem"))
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
    /// Plain servers only: a [`Self::start_tls`] server speaks TLS alone.
    pub async fn command(&self, words: &[&str]) -> Result<String, HarnessError> {
        if self.tls.is_some() {
            return Err(HarnessError::Protocol(
                "command() speaks plain RESP; this server is TLS-only".into(),
            ));
        }
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

    /// Whether the server accepts connections now: `PING` answered on a plain server; a TCP
    /// connection accepted on a TLS one (its handshake is the client's business).
    async fn answers(&self) -> bool {
        if self.tls.is_none() {
            return self
                .command(&["PING"])
                .await
                .is_ok_and(|r| r.starts_with("+PONG"));
        }
        matches!(
            tokio::time::timeout(
                Duration::from_secs(1),
                TcpStream::connect(("127.0.0.1", self.port))
            )
            .await,
            Ok(Ok(_))
        )
    }

    async fn spawn(&mut self) -> Result<(), HarnessError> {
        let mut command = Command::new(&self.binary);
        match &self.tls {
            None => {
                command.args(["--port", &self.port.to_string()]);
            }
            Some(t) => {
                command
                    .args(["--port", "0", "--tls-port", &self.port.to_string()])
                    .arg("--tls-cert-file")
                    .arg(self.dir.join("server.pem"))
                    .arg("--tls-key-file")
                    .arg(self.dir.join("server.key"))
                    .arg("--tls-ca-cert-file")
                    .arg(self.dir.join("ca.pem"))
                    .args(["--tls-auth-clients", "no", "--user", "default", "off"])
                    .args(["--user", &t.user, "on"])
                    .arg(format!(">{}", t.password))
                    .args(["~*", "+@all"]);
            }
        }
        let mut child = command
            .args([
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
            if self.answers().await {
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
