//! gzip for responses, behind the `gzip` feature (on by default).
//!
//! Owns: whether a request's `Accept-Encoding` takes gzip and compressing a
//! body. Without the feature no request takes gzip and [`compress`] gives
//! `None`, so every body goes out as it is; callers never pick a
//! `Content-Encoding` themselves. Must not: know routes or formats.

/// How hard to compress: a scrape is compressed at every request, an
/// embedded asset once.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Effort {
    Fast,
    #[cfg_attr(not(feature = "dashboard"), allow(dead_code))]
    Best,
}

/// Whether `accept_encoding` takes gzip (`q` above 0). Always false
/// without the `gzip` feature.
pub(crate) fn accepted(accept_encoding: &str) -> bool {
    cfg!(feature = "gzip")
        && accept_encoding.split(',').any(|entry| {
            let mut parts = entry.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            let q = parts.find_map(|p| p.strip_prefix("q=")).and_then(|q| q.parse::<f32>().ok()).unwrap_or(1.0);
            coding.eq_ignore_ascii_case("gzip") && q > 0.0
        })
}

/// `body` gzipped, or `None` without the `gzip` feature.
#[cfg(feature = "gzip")]
pub(crate) fn compress(body: &[u8], effort: Effort) -> Option<Vec<u8>> {
    use std::io::Write;
    let level = match effort {
        Effort::Fast => flate2::Compression::fast(),
        Effort::Best => flate2::Compression::best(),
    };
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), level);
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(body);
    enc.finish().ok()
}

/// `body` gzipped, or `None` without the `gzip` feature.
#[cfg(not(feature = "gzip"))]
pub(crate) fn compress(_body: &[u8], _effort: Effort) -> Option<Vec<u8>> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding() {
        let on = cfg!(feature = "gzip");
        assert_eq!(accepted("gzip"), on);
        assert_eq!(accepted("br, gzip;q=0.5"), on);
        assert_eq!(accepted("GZIP"), on);
        assert!(!accepted("gzip;q=0"));
        assert!(!accepted("identity"));
        assert_eq!(compress(b"abc", Effort::Fast).is_some(), on);
    }
}
