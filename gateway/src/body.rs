//! Request bodies, read only after the asker's role was checked, under a per-route size
//! limit and a deadline, so a device cannot make the gateway hold what it sends slowly
//! or never finishes (PROTOCOL.md "Limits").

use std::time::Duration;

use axum::body::Body;
use http_body_util::{BodyExt as _, Limited};
use serde::de::DeserializeOwned;

/// Why a body was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyError {
    /// Larger than the route accepts.
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// Not complete within the deadline.
    #[error("the request body did not arrive within {0} s")]
    TooSlow(u64),
    /// Not the JSON the route expects.
    #[error("the request body is not the expected JSON: {0}")]
    Invalid(String),
}

impl BodyError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            Self::TooLarge(_) => 413,
            Self::TooSlow(_) => 408,
            Self::Invalid(_) => 400,
        }
    }
}

/// Reads at most `max` bytes of `body` within `deadline` and decodes them as JSON.
pub async fn read_json<T: DeserializeOwned>(
    body: Body,
    max: usize,
    deadline: Duration,
) -> Result<T, BodyError> {
    let collected = tokio::time::timeout(deadline, Limited::new(body, max).collect())
        .await
        .map_err(|_| BodyError::TooSlow(deadline.as_secs()))?
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                BodyError::TooLarge(max)
            } else {
                BodyError::Invalid(e.to_string())
            }
        })?;
    serde_json::from_slice(&collected.to_bytes()).map_err(|e| BodyError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures_util::stream;

    #[tokio::test]
    async fn small_json_is_read() {
        let v: serde_json::Value = read_json(Body::from("{\"a\":1}"), 64, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(v["a"], 1);
    }

    #[tokio::test]
    async fn large_bodies_are_refused_without_reading_them_all() {
        let big = Body::from(vec![b' '; 1 << 20]);
        let r: Result<serde_json::Value, _> = read_json(big, 4096, Duration::from_secs(1)).await;
        assert_eq!(r.unwrap_err(), BodyError::TooLarge(4096));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_never_ends_meets_the_deadline() {
        let endless = stream::pending::<Result<Bytes, std::io::Error>>();
        let r: Result<serde_json::Value, _> =
            read_json(Body::from_stream(endless), 4096, Duration::from_secs(10)).await;
        assert_eq!(r.unwrap_err(), BodyError::TooSlow(10));
    }
}
