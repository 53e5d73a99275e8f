//! How to reach etcd: endpoints, mutual TLS, timeouts. Plaintext is refused unless asked
//! for, because whoever can write the registry decides who signs.

use std::path::PathBuf;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

use super::{within, CustodyError};

/// The files of mutual TLS, as `etcdctl --cacert --cert --key` takes them.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA that signed the etcd members' server certificates.
    pub ca: PathBuf,
    /// This host's client certificate and its private key (PEM).
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// `https://host:port` (or `http://` with `insecure_plaintext`); every member of the
    /// cluster, so that losing one leaves the others.
    pub endpoints: Vec<String>,
    /// Required for `https://` endpoints.
    pub tls: Option<TlsFiles>,
    /// Allow `http://` endpoints.
    pub insecure_plaintext: bool,
    pub connect_timeout: Duration,
    /// Each request, and a custody check as a whole.
    pub request_timeout: Duration,
    /// The TTL of the lease bound to the custody lock (kept alive while working).
    pub lock_ttl: Duration,
    /// How long to wait for another custody operation to finish.
    pub lock_wait: Duration,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            endpoints: Vec::new(),
            tls: None,
            insecure_plaintext: false,
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(5),
            lock_ttl: Duration::from_secs(10),
            lock_wait: Duration::from_secs(30),
        }
    }
}

impl EtcdOptions {
    /// Refuse what must not be used before anything is sent.
    fn validate(&self) -> Result<(), CustodyError> {
        if self.endpoints.is_empty() {
            return Err(CustodyError::Options("no etcd endpoint given".into()));
        }
        let plain = self.endpoints.iter().filter(|e| e.starts_with("http://"));
        let tls = self.endpoints.iter().filter(|e| e.starts_with("https://"));
        let (plain, tls) = (plain.count(), tls.count());
        if plain + tls != self.endpoints.len() {
            return Err(CustodyError::Options(
                "etcd endpoints must be https://host:port (or http:// with --insecure-plaintext)"
                    .into(),
            ));
        }
        if plain > 0 && tls > 0 {
            return Err(CustodyError::Options(
                "etcd endpoints mix http:// and https://".into(),
            ));
        }
        if plain > 0 && !self.insecure_plaintext {
            return Err(CustodyError::Options(
                "refusing plaintext etcd (http://): anyone on the path could move custody; \
                 use https:// with --etcd-cacert/--etcd-cert/--etcd-key, or --insecure-plaintext"
                    .into(),
            ));
        }
        if tls > 0 && self.tls.is_none() {
            return Err(CustodyError::Options(
                "https:// etcd endpoints need --etcd-cacert, --etcd-cert and --etcd-key".into(),
            ));
        }
        if plain > 0 && self.tls.is_some() {
            return Err(CustodyError::Options(
                "TLS files given for http:// endpoints".into(),
            ));
        }
        Ok(())
    }

    fn tls_options(&self) -> Result<Option<TlsOptions>, CustodyError> {
        let Some(files) = &self.tls else {
            return Ok(None);
        };
        let read = |p: &PathBuf| {
            std::fs::read(p)
                .map_err(|e| CustodyError::Options(format!("cannot read {}: {e}", p.display())))
        };
        let ca = Certificate::from_pem(read(&files.ca)?);
        let identity = Identity::from_pem(read(&files.cert)?, read(&files.key)?);
        Ok(Some(
            TlsOptions::new().ca_certificate(ca).identity(identity),
        ))
    }

    /// One client per endpoint, so that an operation can go to a member that answers; each
    /// connects on its first request.
    pub(crate) async fn connect(&self) -> Result<Vec<Client>, CustodyError> {
        self.validate()?;
        let mut options = ConnectOptions::new()
            .with_connect_timeout(self.connect_timeout)
            .with_keep_alive(self.request_timeout, self.request_timeout)
            // A member cut off from the quorum must say so, not answer from its own state.
            .with_require_leader(true);
        if let Some(tls) = self.tls_options()? {
            options = options.with_tls(tls);
        }
        let mut clients = Vec::new();
        for endpoint in &self.endpoints {
            let connecting = Client::connect([endpoint], Some(options.clone()));
            clients.push(within("connect", self.connect_timeout, connecting).await?);
        }
        Ok(clients)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(endpoints: &[&str], insecure: bool, tls: bool) -> EtcdOptions {
        EtcdOptions {
            endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
            insecure_plaintext: insecure,
            tls: tls.then(|| TlsFiles {
                ca: "ca".into(),
                cert: "c".into(),
                key: "k".into(),
            }),
            ..EtcdOptions::default()
        }
    }

    #[test]
    fn plaintext_needs_consent_and_tls_needs_files() {
        let refused = |o: EtcdOptions| o.validate().expect_err("refused").to_string();
        assert!(refused(with(&["http://127.0.0.1:2379"], false, false)).contains("plaintext"));
        assert!(with(&["http://127.0.0.1:2379"], true, false)
            .validate()
            .is_ok());
        assert!(refused(with(&["https://a:2379"], false, false)).contains("--etcd-cacert"));
        assert!(with(&["https://a:2379", "https://b:2379"], false, true)
            .validate()
            .is_ok());
        assert!(refused(with(&["a:2379"], false, true)).contains("https://"));
        assert!(refused(with(&["http://a:1", "https://b:2"], true, true)).contains("mix"));
        assert!(refused(with(&[], false, true)).contains("no etcd"));
    }
}
