//! Error answers of the phone API: JSON `{"error", "code"}` for every refusal, including
//! unknown paths and wrong methods, with the status the code prescribes
//! (`latchkey_pairing::ErrorCode`, listed in PROTOCOL.md §7).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use latchkey_pairing::{ApiError, Denied, ErrorCode};

use crate::admin::actions::ActionError;
use crate::live::LiveError;

/// The answer for `code`, with `message` for people.
pub fn error(code: ErrorCode, message: &str) -> Response {
    let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // The text may quote a camera, a path or a peer: escaped like every string from outside.
    let message = latchkey_pairing::text::escape(message);
    (status, Json(ApiError::new(code, message.as_ref()))).into_response()
}

/// A device turned away by the allow-list, or asking beyond its role or grants.
pub fn denied(denied: Denied) -> Response {
    error(ErrorCode::from(denied), &denied.to_string())
}

/// The one answer for "no such camera" and "not yours".
pub fn no_such_camera() -> Response {
    error(ErrorCode::NoSuchCamera, "no such camera")
}

/// A camera that cannot serve the asked format.
pub fn live(e: &LiveError) -> Response {
    let code = match e {
        LiveError::NotVideo => ErrorCode::WrongFormat,
        LiveError::NotJpeg => ErrorCode::WrongFormat,
        LiveError::NoSnapshot => ErrorCode::NoSnapshot,
        LiveError::Mp4(_) => {
            tracing::warn!("a camera's parameters cannot be muxed: {e}");
            ErrorCode::CameraUnusable
        }
    };
    error(code, &e.to_string())
}

/// A request body refused by `body::read_json` (PROTOCOL.md "Limits").
pub fn body(e: &crate::body::BodyError) -> Response {
    let code = match e {
        crate::body::BodyError::TooLarge(_) => ErrorCode::TooLarge,
        crate::body::BodyError::TooSlow(_) => ErrorCode::BodyTimeout,
        crate::body::BodyError::Invalid(_) => ErrorCode::BadRequest,
    };
    error(code, &e.to_string())
}

/// A failed owner action.
pub fn action(e: &ActionError) -> Response {
    let code = match e {
        ActionError::NoSuchDevice(_) => ErrorCode::NoSuchDevice,
        ActionError::NoSuchCamera(_) => ErrorCode::NoSuchCamera,
        ActionError::Invalid(_) => ErrorCode::BadRequest,
        ActionError::Conflict(_) => ErrorCode::Conflict,
        _ => ErrorCode::Internal,
    };
    if code == ErrorCode::Internal {
        tracing::error!("owner action from a phone failed: {e}");
    }
    error(code, &e.to_string())
}

/// The router's fallback: a path the API does not have.
pub async fn not_found() -> Response {
    error(
        ErrorCode::NotFound,
        "no such path in the gateway API (see PROTOCOL.md §7)",
    )
}

/// A path whose `{id}` segment does not decode (not UTF-8): no such resource.
pub fn bad_path() -> Response {
    error(
        ErrorCode::NotFound,
        "no such path in the gateway API (an id in it is not valid UTF-8)",
    )
}

/// The router's answer to a known path asked with the wrong method.
pub async fn method_not_allowed() -> Response {
    error(
        ErrorCode::MethodNotAllowed,
        "this path does not take that method (see PROTOCOL.md §7)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_codes() {
        for code in ErrorCode::ALL {
            assert_eq!(error(code, "x").status().as_u16(), code.status(), "{code}");
        }
        let r = action(&ActionError::NoSuchDevice("x".into()));
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(denied(Denied::NotOwner).status(), StatusCode::FORBIDDEN);
    }
}
