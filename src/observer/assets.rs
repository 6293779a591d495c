//! The page's files, built into the binary: the observer works with no network beyond
//! the node (nothing from a CDN).

pub const INDEX_HTML: &str = include_str!("assets/index.html");
pub const OBSERVER_JS: &str = include_str!("assets/observer.js");
pub const OBSERVER_CSS: &str = include_str!("assets/observer.css");
/// The history report's script and style, inlined into each report file.
pub const REPORT_JS: &str = include_str!("assets/report.js");
pub const REPORT_CSS: &str = include_str!("assets/report.css");

/// An asset under `/assets/` by file name, with its content type.
pub fn get(file: &str) -> Option<(&'static str, &'static str)> {
    match file {
        "observer.js" => Some(("text/javascript; charset=utf-8", OBSERVER_JS)),
        "observer.css" => Some(("text/css; charset=utf-8", OBSERVER_CSS)),
        _ => None,
    }
}
