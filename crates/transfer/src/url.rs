use std::path::PathBuf;

use crate::{Backend, BackendError, LocalBackend, S3Backend, S3Config, SftpBackend, SftpConfig};

/// Where a repository lives, parsed from `--repo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoUrl {
    /// A directory: a plain path, or `file:///path`.
    Local(PathBuf),
    /// `sftp://user@host[:port]/path`.
    Sftp {
        user: String,
        host: String,
        port: u16,
        path: String,
    },
    /// `s3://bucket[/prefix]`.
    S3 { bucket: String, prefix: String },
}

impl RepoUrl {
    pub fn parse(url: &str) -> Result<Self, BackendError> {
        let bad = |why: &str| BackendError::Other(format!("invalid repository URL {url:?}: {why}"));
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("the bucket is missing (s3://bucket/prefix)"));
            }
            let prefix = prefix.trim_matches('/');
            if !prefix.is_empty() {
                crate::validate_name(prefix)
                    .map_err(|e| bad(&format!("the prefix is not usable: {e}")))?;
            }
            return Ok(RepoUrl::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            });
        }
        if let Some(rest) = url.strip_prefix("sftp://") {
            let (authority, path) = rest
                .split_once('/')
                .ok_or_else(|| bad("expected sftp://user@host[:port]/path"))?;
            let (user, hostport) = authority
                .rsplit_once('@')
                .ok_or_else(|| bad("the user is missing (sftp://user@host/path)"))?;
            let port_of = |p: &str| {
                p.parse::<u16>()
                    .map_err(|_| bad("the port is not a number"))
            };
            // An IPv6 address is bracketed, as in ssh URLs: sftp://user@[::1]:2222/path.
            let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
                let (h, after) = v6
                    .split_once(']')
                    .ok_or_else(|| bad("unclosed '[' in an IPv6 host"))?;
                match after {
                    "" => (h, 22),
                    _ => match after.strip_prefix(':') {
                        Some(p) => (h, port_of(p)?),
                        None => return Err(bad("expected :port after the IPv6 host")),
                    },
                }
            } else {
                match hostport.rsplit_once(':') {
                    Some((h, p)) => (h, port_of(p)?),
                    None => (hostport, 22),
                }
            };
            if user.is_empty() || host.is_empty() {
                return Err(bad("user and host must not be empty"));
            }
            return Ok(RepoUrl::Sftp {
                user: user.to_string(),
                host: host.to_string(),
                port,
                path: format!("/{path}"),
            });
        }
        let path = url.strip_prefix("file://").unwrap_or(url);
        if path.is_empty() {
            return Err(bad("empty path"));
        }
        if url.contains("://") && !url.starts_with("file://") {
            return Err(bad(
                "supported schemes are a plain path, file://, sftp:// and s3://",
            ));
        }
        Ok(RepoUrl::Local(PathBuf::from(path)))
    }
}

impl RepoUrl {
    /// One spelling per location, for records that must name the place they vouch for: an
    /// absolute local path with symlinks resolved (as given when it cannot be resolved), and
    /// `sftp://user@host:port/path` with the port always written.
    pub fn canonical(&self) -> String {
        match self {
            RepoUrl::Local(p) => std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string(),
            RepoUrl::Sftp {
                user,
                host,
                port,
                path,
            } if host.contains(':') => format!("sftp://{user}@[{host}]:{port}{path}"),
            RepoUrl::Sftp {
                user,
                host,
                port,
                path,
            } => format!("sftp://{user}@{host}:{port}{path}"),
            RepoUrl::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            RepoUrl::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

/// Open the backend for an existing repository location.
pub fn open(url: &str) -> Result<Box<dyn Backend>, BackendError> {
    connect(url, false)
}

/// Open the backend for a location, creating the directory if it does not exist yet (`init`, `copy`).
pub fn create(url: &str) -> Result<Box<dyn Backend>, BackendError> {
    connect(url, true)
}

fn connect(url: &str, create: bool) -> Result<Box<dyn Backend>, BackendError> {
    match RepoUrl::parse(url)? {
        RepoUrl::Local(path) if create => Ok(Box::new(LocalBackend::create(path)?)),
        RepoUrl::Local(path) => Ok(Box::new(LocalBackend::open(path)?)),
        // Keys, known_hosts and host-key acceptance come from VTOOL_SSH_* (see SftpConfig).
        RepoUrl::Sftp {
            user,
            host,
            port,
            path,
        } => {
            let config = SftpConfig::new(user, host, port, path).with_env();
            let backend = if create {
                SftpBackend::create(config)?
            } else {
                SftpBackend::open(config)?
            };
            Ok(Box::new(backend))
        }
        // Credentials from AWS_*; endpoint and path style also from VTOOL_S3_* (see S3Config).
        RepoUrl::S3 { bucket, prefix } => {
            let config = S3Config::new(bucket, prefix).with_env();
            let backend = if create {
                S3Backend::create(config)?
            } else {
                S3Backend::open(config)?
            };
            Ok(Box::new(backend))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RepoUrl;

    #[test]
    fn parses_urls() {
        assert_eq!(
            RepoUrl::parse("sftp://val@backup.example:2222/srv/repo").expect("parse"),
            RepoUrl::Sftp {
                user: "val".into(),
                host: "backup.example".into(),
                port: 2222,
                path: "/srv/repo".into()
            }
        );
        assert_eq!(
            RepoUrl::parse("/mnt/drive/repo").expect("parse"),
            RepoUrl::Local("/mnt/drive/repo".into())
        );
        assert_eq!(
            RepoUrl::parse("sftp://val@[2001:db8::1]:2222/srv/repo").expect("parse"),
            RepoUrl::Sftp {
                user: "val".into(),
                host: "2001:db8::1".into(),
                port: 2222,
                path: "/srv/repo".into()
            }
        );
        assert!(matches!(
            RepoUrl::parse("sftp://val@[::1]/r").expect("parse"),
            RepoUrl::Sftp { port: 22, .. }
        ));
        assert!(RepoUrl::parse("sftp://val@[::1/r").is_err());
        assert!(RepoUrl::parse("sftp://val@[::1]x/r").is_err());
        assert!(RepoUrl::parse("sftp://val@host:99999/r").is_err());
        assert_eq!(
            RepoUrl::parse("s3://vault/repos/one/").expect("parse"),
            RepoUrl::S3 {
                bucket: "vault".into(),
                prefix: "repos/one".into()
            }
        );
        assert!(matches!(
            RepoUrl::parse("s3://vault").expect("parse"),
            RepoUrl::S3 { prefix, .. } if prefix.is_empty()
        ));
        assert!(RepoUrl::parse("s3:///prefix").is_err());
        assert!(RepoUrl::parse("s3://vault/a/../b").is_err());
        assert!(RepoUrl::parse("gs://bucket").is_err());
        assert!(RepoUrl::parse("sftp://host/path").is_err());
    }
}
