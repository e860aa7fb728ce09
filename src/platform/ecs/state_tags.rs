//! A rollout's state kept in an ECS service's tags (DESIGN §2b: "rollout state lives on the
//! platform"). Pure: text in, tags out, and back.
//!
//! A tag value holds at most 256 characters of letters, digits, spaces and `+ - = . _ : / @`,
//! and a resource at most 50 tags. The state (JSON, a few KB with its checks) is gzipped,
//! written in base64 (whose alphabet is in that set) and cut into 256-character chunks:
//! `movieverse.dev/rollout.0`, `.1`, … The head tag `movieverse.dev/rollout` says the
//! format, the number of chunks and a SHA-256 prefix of the text, so chunks of an older,
//! longer state left behind are never read, and a torn write is seen as such.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};

use base64::Engine as _;
use sha2::Digest as _;

/// The head tag's key; the chunks are `HEAD.0`, `HEAD.1`, …
pub const HEAD: &str = "movieverse.dev/rollout";
/// A tag value's longest length.
const CHUNK: usize = 256;
/// Chunks at most: the tags a resource may carry (50) less the head and room for the user's.
pub const MAX_CHUNKS: usize = 40;

/// Why tags do not hold a state.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TagError {
    #[error(
        "the rollout state is {0} tag values long, more than the {MAX_CHUNKS} an ECS service can spare"
    )]
    TooLong(usize),
    #[error(
        "the rollout state in the service's tags is damaged ({0}): it was written partly, or by hand"
    )]
    Damaged(String),
}

fn digest(text: &str) -> String {
    let d = sha2::Sha256::digest(text.as_bytes());
    d.iter().take(8).fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn chunk_key(i: usize) -> String {
    format!("{HEAD}.{i}")
}

/// The tags that hold `text`: the head, then the chunks.
pub fn encode(text: &str) -> Result<Vec<(String, String)>, TagError> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(text.as_bytes()).expect("writing to memory");
    let bytes = gz.finish().expect("writing to memory");
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let chunks: Vec<&str> = b64
        .as_bytes()
        .chunks(CHUNK)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    if chunks.len() > MAX_CHUNKS {
        return Err(TagError::TooLong(chunks.len()));
    }
    let mut tags = vec![(
        HEAD.to_owned(),
        format!("v1:{}:{}", chunks.len(), digest(text)),
    )];
    tags.extend(
        chunks
            .iter()
            .enumerate()
            .map(|(i, c)| (chunk_key(i), (*c).to_owned())),
    );
    Ok(tags)
}

/// The state the tags hold: `None` when there is none (no head tag).
pub fn decode(tags: &[(String, String)]) -> Result<Option<String>, TagError> {
    let get = |k: &str| {
        tags.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let Some(head) = get(HEAD) else {
        return Ok(None);
    };
    let damaged = |why: &str| TagError::Damaged(why.to_owned());
    let mut parts = head.split(':');
    let (Some("v1"), Some(n), Some(sum), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(damaged("its head tag is not `v1:N:DIGEST`"));
    };
    let n: usize = n.parse().map_err(|_| damaged("its chunk count"))?;
    let mut b64 = String::new();
    for i in 0..n.min(MAX_CHUNKS) {
        b64.push_str(get(&chunk_key(i)).ok_or_else(|| damaged(&format!("chunk {i} is missing")))?);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| damaged("not base64"))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .map_err(|_| damaged("not gzip"))?;
    if digest(&text) != sum {
        return Err(damaged("its digest does not match"));
    }
    Ok(Some(text))
}

/// The tag keys of ours in `tags` that `written` does not set again (chunks of a longer,
/// older state), to remove after a write.
pub fn stale(tags: &[(String, String)], written: &[(String, String)]) -> Vec<String> {
    tags.iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with(&format!("{HEAD}.")) && !written.iter().any(|(w, _)| w == *k))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_round_trips_through_tags_within_their_limits() {
        let text = format!(
            "{{\"checks\":[{}]}}",
            (0..60)
                .map(|i| format!(
                    "{{\"at\":{i},\"metrics\":[{{\"name\":\"p99\",\"value\":{}}}]}}",
                    i * 7
                ))
                .collect::<Vec<_>>()
                .join(",")
        );
        let tags = encode(&text).unwrap();
        for (k, v) in &tags {
            assert!(v.len() <= 256 && k.len() <= 128);
            assert!(
                v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-=._:/@ ".contains(c)),
                "{v}"
            );
        }
        assert_eq!(decode(&tags).unwrap().as_deref(), Some(text.as_str()));
        assert_eq!(decode(&[]).unwrap(), None);
        assert!(tags.len() > 2, "the test state takes several chunks");
        // A longer state written before leaves chunks behind: they are not read, and are stale.
        let short = encode("{}").unwrap();
        let mut mixed: Vec<(String, String)> = tags.clone();
        for (k, v) in &short {
            mixed.retain(|(key, _)| key != k);
            mixed.push((k.clone(), v.clone()));
        }
        assert_eq!(decode(&mixed).unwrap().as_deref(), Some("{}"));
        assert_eq!(stale(&mixed, &short).len(), tags.len() - short.len());
        // A torn write is damaged, not another state.
        let mut torn = tags.clone();
        torn.retain(|(k, _)| k != &chunk_key(0));
        assert!(matches!(decode(&torn), Err(TagError::Damaged(_))));
    }
}
