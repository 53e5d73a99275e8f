//! One SSH connection carrying one SFTP session: TCP connect, host-key check, authentication.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use russh::client::{self, Handle};
use russh::keys::agent::client::AgentClient;
use russh::keys::{self, known_hosts, HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh_sftp::client::rawsession::Limits;
use russh_sftp::client::RawSftpSession;
use russh_sftp::extensions;

use super::{OpError, SftpConfig};
use crate::BackendError;

/// OpenSSH's sftp-server accepts 256 KiB messages; stay below that when it does not say.
const DEFAULT_IO_LEN: u64 = 255 * 1024;
/// Without the limits extension the protocol only guarantees 32 KiB.
const FALLBACK_IO_LEN: u64 = 32 * 1024;

pub(super) struct Conn {
    /// Kept so the SSH session lives as long as the SFTP session on top of it.
    handle: Handle<Client>,
    pub sftp: Arc<RawSftpSession>,
    pub read_len: u32,
    pub write_len: usize,
    pub has_fsync: bool,
}

impl Conn {
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    pub async fn connect(cfg: &SftpConfig) -> Result<Conn, OpError> {
        let known_hosts = cfg.known_hosts_path()?;
        let handler = Client {
            host: cfg.host.clone(),
            port: cfg.port,
            known_hosts: known_hosts.clone(),
            accept_new: cfg.accept_new_host_key,
        };
        let ssh_config = Arc::new(client::Config {
            preferred: preferred_algorithms(&cfg.host, cfg.port, &known_hosts),
            // Large receive window so pipelined reads are not throttled by flow control.
            window_size: 16 * 1024 * 1024,
            maximum_packet_size: 32768,
            keepalive_interval: Some(std::time::Duration::from_secs(15)),
            keepalive_max: 3,
            nodelay: true,
            ..Default::default()
        });
        let mut handle = client::connect(ssh_config, (cfg.host.as_str(), cfg.port), handler)
            .await
            .map_err(|e| match e {
                HandlerError::HostKey(e) => OpError::Fatal(e),
                HandlerError::Ssh(e) => {
                    OpError::Conn(format!("cannot connect to {}:{}: {e}", cfg.host, cfg.port))
                }
            })?;
        authenticate(&mut handle, cfg).await?;

        let lost = |e: russh::Error| OpError::Conn(format!("opening the sftp subsystem: {e}"));
        let channel = handle.channel_open_session().await.map_err(lost)?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(lost)?;
        let sftp_config = russh_sftp::client::Config {
            request_timeout_secs: cfg.request_timeout.as_secs().max(1),
            ..Default::default()
        };
        let mut sftp = RawSftpSession::new_with_config(channel.into_stream(), sftp_config);
        let version = sftp.init().await.map_err(|e| {
            OpError::Conn(format!(
                "the server did not start an sftp session (is the sftp subsystem enabled?): {e}"
            ))
        })?;
        let has = |name: &str, ver: &str| version.extensions.get(name).is_some_and(|v| v == ver);
        let mut limits = Limits::default();
        if has(extensions::LIMITS, "1") {
            if let Ok(l) = sftp.limits().await {
                limits = Limits::from(l);
                sftp.set_limits(limits);
            }
        }
        let default_len = if has(extensions::LIMITS, "1") {
            DEFAULT_IO_LEN
        } else {
            FALLBACK_IO_LEN
        };
        // Leave room for the packet header inside the server's maximum packet length.
        let cap = limits
            .packet_len
            .map_or(default_len, |p| p.saturating_sub(1024).max(FALLBACK_IO_LEN));
        let read_len = limits
            .read_len
            .unwrap_or(default_len)
            .min(cap)
            .min(u32::MAX as u64) as u32;
        let write_len = limits.write_len.unwrap_or(default_len).min(cap) as usize;
        Ok(Conn {
            handle,
            sftp: Arc::new(sftp),
            read_len,
            write_len,
            has_fsync: has(extensions::FSYNC, "1"),
        })
    }
}

/// Put host-key algorithms already recorded for this host first, as OpenSSH does, so a server
/// with several keys presents the one we can verify.
fn preferred_algorithms(host: &str, port: u16, known_hosts: &Path) -> russh::Preferred {
    let mut preferred = russh::Preferred {
        // The cipher with hardware support on common CPUs first: it decides bulk throughput.
        cipher: Cow::Owned(vec![
            russh::cipher::AES_256_GCM,
            russh::cipher::CHACHA20_POLY1305,
            russh::cipher::AES_256_CTR,
            russh::cipher::AES_128_CTR,
        ]),
        ..Default::default()
    };
    let known: Vec<keys::Algorithm> = known_hosts::known_host_keys_path(host, port, known_hosts)
        .unwrap_or_default()
        .into_iter()
        .map(|(_, key)| key.algorithm())
        .collect();
    if !known.is_empty() {
        let mut order: Vec<keys::Algorithm> = preferred
            .key
            .iter()
            .filter(|a| known.contains(a))
            .cloned()
            .collect();
        order.extend(preferred.key.iter().filter(|a| !known.contains(a)).cloned());
        preferred.key = Cow::Owned(order);
    }
    preferred
}

/// The signature hash to use with a key: the best the server supports for RSA, none otherwise.
async fn rsa_hash(
    handle: &Handle<Client>,
    algorithm: keys::Algorithm,
) -> Result<Option<HashAlg>, russh::Error> {
    if !algorithm.is_rsa() {
        return Ok(None);
    }
    Ok(handle.best_supported_rsa_hash().await?.flatten())
}

async fn authenticate(handle: &mut Handle<Client>, cfg: &SftpConfig) -> Result<(), OpError> {
    let lost =
        |e: russh::Error| OpError::Conn(format!("connection lost during authentication: {e}"));
    let mut tried = Vec::new();
    let (candidates, explicit) = cfg.identity_candidates();
    for path in candidates {
        if !path.exists() {
            if explicit {
                return Err(OpError::Fatal(BackendError::Other(format!(
                    "SSH identity file {} does not exist (VTOOL_SSH_KEY)",
                    path.display()
                ))));
            }
            continue;
        }
        // A private key other users can read is refused even when not named explicitly:
        // ssh would refuse it too, and using it silently hides the leak.
        crate::check_private_file(&path)
            .map_err(|e| OpError::Fatal(BackendError::Other(e.to_string())))?;
        let key = match keys::load_secret_key(&path, None) {
            Ok(key) => key,
            Err(e) if explicit => {
                return Err(OpError::Fatal(BackendError::Other(format!(
                    "cannot load SSH identity file {}: {e} (a passphrase-protected key must be loaded into ssh-agent instead)",
                    path.display()
                ))))
            }
            Err(_) => continue,
        };
        let hash = rsa_hash(handle, key.algorithm()).await.map_err(lost)?;
        let result = handle
            .authenticate_publickey(&cfg.user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
            .await
            .map_err(lost)?;
        if result.success() {
            return Ok(());
        }
        tried.push(path.display().to_string());
    }

    if cfg.use_agent && std::env::var_os("SSH_AUTH_SOCK").is_some() {
        if let Ok(mut agent) = AgentClient::connect_env().await {
            let identities = agent.request_identities().await.unwrap_or_default();
            for identity in identities {
                let key = identity.public_key().into_owned();
                let hash = rsa_hash(handle, key.algorithm()).await.map_err(lost)?;
                // An agent that refuses to sign one key should not stop us trying the next.
                if let Ok(result) = handle
                    .authenticate_publickey_with(&cfg.user, key, hash, &mut agent)
                    .await
                {
                    if result.success() {
                        return Ok(());
                    }
                }
                tried.push(format!("ssh-agent key {}", identity.comment()));
            }
        }
    }

    if tried.is_empty() {
        tried.push(
            "no usable key: none of ~/.ssh/id_ed25519, id_ecdsa, id_rsa, no ssh-agent".into(),
        );
    }
    Err(OpError::Fatal(BackendError::AuthFailed {
        user: cfg.user.clone(),
        host: format!("{}:{}", cfg.host, cfg.port),
        tried: tried.join(", "),
    }))
}

pub(super) struct Client {
    host: String,
    port: u16,
    known_hosts: std::path::PathBuf,
    accept_new: bool,
}

#[derive(Debug)]
pub(super) enum HandlerError {
    Ssh(russh::Error),
    HostKey(BackendError),
}

impl From<russh::Error> for HandlerError {
    fn from(e: russh::Error) -> Self {
        HandlerError::Ssh(e)
    }
}

impl client::Handler for Client {
    type Error = HandlerError;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = server_key else {
            return Err(HandlerError::HostKey(BackendError::Other(format!(
                "{} presented a host certificate; only plain host keys in known_hosts are supported",
                self.host
            ))));
        };
        let host = format!("{}:{}", self.host, self.port);
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let known_hosts = self.known_hosts.display().to_string();
        match known_hosts::check_known_hosts_path(&self.host, self.port, key, &self.known_hosts) {
            Ok(true) => Ok(true),
            Ok(false) if self.accept_new => {
                known_hosts::learn_known_hosts_path(&self.host, self.port, key, &self.known_hosts)
                    .map_err(|e| {
                        HandlerError::HostKey(BackendError::Other(format!(
                            "cannot record the host key of {host} in {known_hosts}: {e}"
                        )))
                    })?;
                Ok(true)
            }
            Ok(false) => Err(HandlerError::HostKey(BackendError::UnknownHost {
                host,
                fingerprint,
                known_hosts,
            })),
            Err(keys::Error::KeyChanged { line }) => {
                Err(HandlerError::HostKey(BackendError::HostKeyMismatch {
                    host,
                    fingerprint,
                    known_hosts,
                    line,
                }))
            }
            Err(e) => Err(HandlerError::HostKey(BackendError::Other(format!(
                "cannot check the host key of {host} against {known_hosts}: {e}"
            )))),
        }
    }
}
