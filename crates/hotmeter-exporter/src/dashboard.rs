//! The dashboard page at `/dashboard`: static assets embedded in the
//! binary, the headers that keep the page safe, the history endpoint's
//! answer, and the list of panel sources the application mounted.
//!
//! Owns: the `/dashboard`, `/dashboard/app.js`, `/dashboard/app.css`,
//! `/dashboard/history` and `/dashboard/sources` answers, the
//! `Content-Security-Policy` they carry, and the sampler task that fills the
//! history. Must not: render data into markup (the page's script puts every
//! label value and help text into text nodes), load anything from another
//! origin, or touch a recording path (the sampler reads snapshots, as a
//! scrape does). Authentication and limits are the server's: these routes
//! are answered only after its checks.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use tokio::sync::watch;

use crate::first::{First, first};
use crate::history::{History, HistoryQuery};
use hotmeter_format::write_json_string;

/// The `Content-Security-Policy` of every dashboard answer: only this
/// origin's script, style and data, no inline script or style, no frames,
/// no forms, no plugins.
pub const DASHBOARD_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// An embedded file and, made on first request, its gzipped bytes (`None`
/// without the `gzip` feature).
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    gzipped: OnceLock<Option<Bytes>>,
}

static ASSETS: [Asset; 3] = [
    Asset {
        path: "/dashboard",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../assets/dashboard.html"),
        gzipped: OnceLock::new(),
    },
    Asset {
        path: "/dashboard/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/dashboard.js"),
        gzipped: OnceLock::new(),
    },
    Asset {
        path: "/dashboard/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/dashboard.css"),
        gzipped: OnceLock::new(),
    },
];

/// A JSON route of the application's that the page shows as a panel.
#[derive(Clone, Debug)]
pub(crate) struct Source {
    pub(crate) title: String,
    pub(crate) path: String,
}

/// The dashboard's state in a server: the history ring and the sources.
#[derive(Debug)]
pub(crate) struct Dashboard {
    pub(crate) history: Mutex<History>,
    pub(crate) sources: Vec<Source>,
    /// The monotonic clock's origin for the ring's timestamps.
    started: Instant,
}

impl Dashboard {
    pub(crate) fn new(history: History, sources: Vec<Source>) -> Self {
        Dashboard { history: Mutex::new(history), sources, started: Instant::now() }
    }

    /// Takes one sample of `registry` into the ring (on a blocking thread:
    /// a snapshot runs the registry's collect callbacks).
    pub(crate) fn sample(&self, registry: &hotmeter::Registry) {
        let snap = registry.snapshot();
        let wall_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let mono = self.started.elapsed().as_secs_f64();
        self.history.lock().unwrap_or_else(PoisonError::into_inner).push(&snap, wall_ms, mono);
    }

    fn sources_json(&self) -> Vec<u8> {
        let mut out = b"{\"sources\":[".to_vec();
        for (i, s) in self.sources.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"title\":");
            write_json_string(&mut out, &s.title);
            out.extend_from_slice(b",\"path\":");
            write_json_string(&mut out, &s.path);
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
        out
    }
}

/// Samples `registry` into the dashboard's ring once per configured
/// interval until `stop` changes (or its sender is gone).
pub(crate) async fn sample_loop(
    dashboard: Arc<Dashboard>,
    registry: hotmeter::Registry,
    mut stop: Option<watch::Receiver<bool>>,
) {
    let interval = dashboard.history.lock().unwrap_or_else(PoisonError::into_inner).config().interval;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        match &mut stop {
            Some(stop) => {
                if let First::A(_) = first(stop.changed(), tick.tick()).await {
                    return;
                }
            }
            None => {
                tick.tick().await;
            }
        }
        let (d, r) = (dashboard.clone(), registry.clone());
        if tokio::task::spawn_blocking(move || d.sample(&r)).await.is_err() {
            return;
        }
    }
}

/// Adds the headers every dashboard answer carries.
pub(crate) fn secure(r: &mut Response<Full<Bytes>>) {
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DASHBOARD_CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

fn reply(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// Whether [`respond`] answers `path` (the page, its assets, history and
/// sources); other `/dashboard/...` paths are left to the application's
/// routes.
pub(crate) fn serves(path: &str) -> bool {
    matches!(path, "/dashboard/" | "/dashboard/history" | "/dashboard/sources") || ASSETS.iter().any(|a| a.path == path)
}

/// The answer to a `/dashboard...` path, or `None` for a path that is not
/// the dashboard's. `gzip`: the client accepts it (assets only; history is
/// small per poll).
pub(crate) async fn respond(
    dashboard: &Arc<Dashboard>,
    path: &str,
    query: Option<&str>,
    gzip: bool,
) -> Option<Response<Full<Bytes>>> {
    let path = if path == "/dashboard/" { "/dashboard" } else { path };
    let mut r = if let Some(asset) = ASSETS.iter().find(|a| a.path == path) {
        let gzipped = gzip.then(|| asset.gzipped.get_or_init(|| gzip_bytes(asset.body).map(Bytes::from)).clone());
        if let Some(Some(body)) = gzipped {
            let mut r = reply(StatusCode::OK, asset.content_type, body);
            r.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            r.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
            r
        } else {
            reply(StatusCode::OK, asset.content_type, Bytes::from_static(asset.body))
        }
    } else {
        match path {
            "/dashboard/history" => match HistoryQuery::parse(query) {
                Ok(q) => {
                    let d = dashboard.clone();
                    let rendered = tokio::task::spawn_blocking(move || {
                        let mut out = Vec::new();
                        d.history.lock().unwrap_or_else(PoisonError::into_inner).write_json(&q, &mut out);
                        out
                    })
                    .await;
                    match rendered {
                        Ok(body) => reply(StatusCode::OK, "application/json", Bytes::from(body)),
                        Err(_) => reply(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "text/plain; charset=utf-8",
                            Bytes::from_static(b"render failed\n"),
                        ),
                    }
                }
                Err(e) => reply(StatusCode::BAD_REQUEST, "text/plain; charset=utf-8", Bytes::from(format!("{e}\n"))),
            },
            "/dashboard/sources" => reply(StatusCode::OK, "application/json", Bytes::from(dashboard.sources_json())),
            _ => return None,
        }
    };
    secure(&mut r);
    Some(r)
}

/// Gzipped bytes (best compression: each asset is compressed once), or
/// `None` without the `gzip` feature.
fn gzip_bytes(body: &[u8]) -> Option<Vec<u8>> {
    crate::gzip::compress(body, crate::gzip::Effort::Best)
}

/// Bytes of the page (HTML, script and style) as a browser fetches it on
/// first load: gzipped, or as they are without the `gzip` feature.
pub fn dashboard_page_weight() -> usize {
    ASSETS.iter().map(|a| gzip_bytes(a.body).map_or(a.body.len(), |z| z.len())).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_has_no_inline_script_or_style_and_loads_only_its_own_assets() {
        let html = std::str::from_utf8(ASSETS[0].body).unwrap();
        assert!(html.contains("<script src=\"/dashboard/app.js\" defer></script>"), "{html}");
        assert!(html.contains("<link rel=\"stylesheet\" href=\"/dashboard/app.css\">"), "{html}");
        assert_eq!(html.matches("<script").count(), 1, "one script tag, with a src");
        assert!(!html.contains("style="), "no inline style attributes");
        assert!(!html.contains("http://") && !html.contains("https://"), "nothing from another origin");
        let js = std::str::from_utf8(ASSETS[1].body).unwrap();
        for banned in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"] {
            assert!(!js.contains(banned), "the script must not use {banned}");
        }
    }

    #[test]
    #[cfg(feature = "gzip")]
    fn page_weight_is_under_the_goal() {
        let weight = dashboard_page_weight();
        assert!(weight < 150 * 1024, "{weight} bytes gzipped");
    }
}
