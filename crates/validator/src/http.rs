//! What the Beacon API and Keymanager API clients share: one blocking agent per server with
//! its timeouts, URLs checked up front, answers read within a size limit, and messages from
//! servers made safe to print.

use std::time::Duration;

/// Why a server's answer could not even be read.
pub(crate) enum Transport {
    Timeout,
    TooLarge(u64),
    Failed(String),
}

/// `url` without a trailing `/`, if it is an `http://` or `https://` URL.
pub(crate) fn base_url(url: &str) -> Result<String, String> {
    let url = url.trim_end_matches('/').to_string();
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url)
    } else {
        Err(url)
    }
}

/// An agent whose every connection and answer must come within `timeout`, which hands back
/// error statuses as answers (their bodies carry the server's message).
pub(crate) fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(timeout))
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into()
}

/// The status and body of an answer, the body at most `limit` bytes.
pub(crate) fn read(
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    limit: u64,
) -> Result<(u16, String), Transport> {
    let mut response = response.map_err(transport)?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_string()
        .map_err(transport)?;
    Ok((status, text))
}

fn transport(e: ureq::Error) -> Transport {
    match e {
        ureq::Error::Timeout(_) => Transport::Timeout,
        ureq::Error::BodyExceedsLimit(limit) => Transport::TooLarge(limit),
        e => Transport::Failed(e.to_string()),
    }
}

/// A server's message as shown on terminals: no control characters, not a whole error page.
pub(crate) fn printable(message: &str) -> String {
    message
        .chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect()
}
