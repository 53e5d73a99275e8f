//! `--repo` URLs: a plain path, file:// or sftp://user@host[:port]/path.

use proptest::prelude::*;
use vtool_transfer::url::RepoUrl;

use super::{fuzz, inputs, Bytes};

pub fn sftp_url() {
    let seeds: Vec<Vec<u8>> = [
        "sftp://vtool@backup2/srv/node1",
        "sftp://vtool@backup2:2222/srv/node1",
        "sftp://me@[::1]:22/r",
        "sftp://a@b@host/p",
        "file:///srv/backups/node1",
        "/srv/backups/node1",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    // Mostly URL-shaped text: the characters the parser splits on.
    let shaped = "(sftp://|file://|)[a-z@:\\[\\]/0-9.%]{0,40}".prop_map(|s| Bytes(s.into_bytes()));
    fuzz("sftp-url", prop_oneof![inputs(seeds), shaped], |data| {
        let text = String::from_utf8_lossy(&data.0);
        let parsed = RepoUrl::parse(&text);
        if let Ok(RepoUrl::Sftp {
            user, host, path, ..
        }) = &parsed
        {
            prop_assert!(!user.is_empty() && !host.is_empty() && path.starts_with('/'));
        }
        Ok(parsed.is_ok())
    });
}
