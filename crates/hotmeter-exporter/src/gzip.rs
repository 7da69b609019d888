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

/// Whether `accept_encoding` takes gzip: an entry `gzip` whose weight
/// (`q`, `Q`, 1 when absent) is above 0; a weight that is not a number
/// refuses it. Always false without the `gzip` feature.
pub(crate) fn accepted(accept_encoding: &str) -> bool {
    cfg!(feature = "gzip")
        && accept_encoding.split(',').any(|entry| {
            let mut parts = entry.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            let q = parts
                .find_map(|p| p.split_once('=').filter(|(name, _)| name.trim().eq_ignore_ascii_case("q")))
                .map_or(Some(1.0), |(_, q)| q.trim().parse::<f32>().ok());
            coding.eq_ignore_ascii_case("gzip") && q.is_some_and(|q| q > 0.0)
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
        assert_eq!(accepted("gzip;q=0.001"), on);
        assert_eq!(accepted("gzip; Q=1"), on);
        assert!(!accepted("gzip;q=0"));
        assert!(!accepted("gzip;Q=0"), "parameter names are case-insensitive");
        assert!(!accepted("gzip;q=bogus"), "a weight that is not a number refuses");
        assert!(!accepted("identity"));
        assert!(!accepted("*"), "as before: only a named gzip");
        assert_eq!(compress(b"abc", Effort::Fast).is_some(), on);
    }
}
