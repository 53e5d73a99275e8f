//! age encryption of whole objects.

use std::io::{Read, Write};

use crate::{Error, Result};

/// Encrypt `plain` to every recipient as one age stream.
pub fn encrypt(recipients: &[age::x25519::Recipient], plain: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(plain.len() + 256);
    encrypt_into(recipients, plain, &mut out)?;
    Ok(out)
}

/// [`encrypt`], appended to `out` (a pack being filled) instead of a buffer of its own;
/// returns the sealed length. On an error `out` is as it was.
pub fn encrypt_into(
    recipients: &[age::x25519::Recipient],
    plain: &[u8],
    out: &mut Vec<u8>,
) -> Result<usize> {
    let start = out.len();
    let sealed = stream_writer(recipients, &mut *out).and_then(|mut w| {
        w.write_all(plain)
            .and_then(|()| w.finish().map(drop))
            .map_err(|e| Error::Internal(format!("encrypt: {e}")))
    });
    match sealed {
        Ok(()) => Ok(out.len() - start),
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// Start an age stream to `recipients` that writes into `out`.
pub fn stream_writer<W: Write>(
    recipients: &[age::x25519::Recipient],
    out: W,
) -> Result<age::stream::StreamWriter<W>> {
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| Error::WrongKey(format!("cannot encrypt: {e}")))?;
    encryptor
        .wrap_output(out)
        .map_err(|e| Error::Internal(format!("encrypt: {e}")))
}

/// Open an age stream for reading with `identity`.
pub fn stream_reader<R: std::io::BufRead>(
    identity: &age::x25519::Identity,
    input: R,
    what: &str,
) -> Result<age::stream::StreamReader<R>> {
    let decryptor = age::Decryptor::new_buffered(input)
        .map_err(|e| Error::Corrupt(format!("{what}: not an age stream ({})", describe(&e))))?;
    decryptor
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .map_err(|e| match e {
            // Also what a flipped stanza looks like: callers that can tell (a content hash,
            // a key that already unlocked the repository) say which it is.
            age::DecryptError::NoMatchingKeys => {
                Error::WrongKey(format!("the identity is not a recipient of {what}"))
            }
            other => Error::Corrupt(format!("{what}: {}", describe(&other))),
        })
}

/// What a decryption failure means for stored data.
fn describe(e: &age::DecryptError) -> String {
    match e {
        age::DecryptError::InvalidMac => "its age header fails its MAC".into(),
        age::DecryptError::InvalidHeader => "its age header is malformed".into(),
        age::DecryptError::UnknownFormat => "not an age v1 stream".into(),
        other => other.to_string(),
    }
}

/// Decrypt a whole object.
pub fn decrypt(identity: &age::x25519::Identity, data: &[u8], what: &str) -> Result<Vec<u8>> {
    let mut r = stream_reader(identity, data, what)?;
    let mut out = Vec::with_capacity(data.len());
    r.read_to_end(&mut out)
        .map_err(|e| Error::Corrupt(format!("{what}: {e}")))?;
    Ok(out)
}
