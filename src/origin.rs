//! Cross-site protection for WebSocket upgrades and state-changing requests. Browsers
//! attach `Origin` to both and let any page open a WebSocket to any host, so the server
//! must check it: its own origin and `--allow-origin` ones pass, others get `403`. A request
//! without `Origin` does not come from a browser page (curl, the load tester) and passes.

use axum::http::{HeaderMap, header};

use crate::error::ApiError;

pub fn check(headers: &HeaderMap, allowed: &[String]) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("(not text)");
    let own = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|host| origin.strip_prefix("http://") == Some(host));
    if own || allowed.iter().any(|a| a.trim_end_matches('/') == origin) {
        Ok(())
    } else {
        Err(ApiError::ForbiddenOrigin(origin.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:3000".parse().unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o.parse().unwrap());
        }
        h
    }

    #[test]
    fn own_absent_and_allowed_origins_pass_others_are_forbidden() {
        let allowed = vec!["http://localhost:3001/".to_string()];
        assert!(check(&headers(None), &allowed).is_ok());
        assert!(check(&headers(Some("http://127.0.0.1:3000")), &allowed).is_ok());
        assert!(check(&headers(Some("http://localhost:3001")), &allowed).is_ok());
        assert!(check(&headers(Some("http://evil.example")), &allowed).is_err());
        assert!(check(&headers(Some("null")), &allowed).is_err());
        assert!(check(&headers(Some("https://127.0.0.1:3000")), &allowed).is_err());
    }
}
