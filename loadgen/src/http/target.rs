//! A target URL taken apart once, at start: where to connect, what to put in the
//! `Host` header, and the origin-form path every request line carries.
//!
//! RFC 9112 §3.2: an HTTP/1.1 request to an origin server uses the origin form
//! (`GET /path?query HTTP/1.1`) and always carries `Host`, with the port only when it
//! is not the scheme's default. The absolute form (`GET http://host/path`) is for
//! proxies, and servers such as nginx answer 400 to a request without `Host`.

use std::fmt;

use hyper::Uri;
use hyper::header::HeaderValue;
use hyper::http::uri::{PathAndQuery, Scheme};

/// `http://` or `https://`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    Plain,
    Tls,
}

/// A parsed target URL.
#[derive(Clone, Debug)]
pub struct Target {
    /// As the user wrote it (for reports).
    pub text: String,
    pub security: Security,
    /// The host as written (a name, an IPv4 address, or an IPv6 address without brackets).
    pub host: String,
    pub port: u16,
    /// `Host` header value: `host` or `host:port` (IPv6 in brackets).
    pub host_header: HeaderValue,
    /// The path and query of the URL (`/` when it has none), in origin form.
    pub path: PathAndQuery,
}

impl Target {
    /// Parses `text`; the error says what is wrong in words fit for a command line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let shown = if text.is_empty() { "''" } else { text };
        let uri: Uri = text.parse().map_err(|_| format!("`{shown}` is not a URL (e.g. http://127.0.0.1:8080/)"))?;
        let security = match uri.scheme() {
            Some(scheme) if *scheme == Scheme::HTTP => Security::Plain,
            Some(scheme) if *scheme == Scheme::HTTPS => Security::Tls,
            Some(scheme) => return Err(format!("`{shown}`: scheme `{scheme}` is not http or https")),
            None => return Err(format!("`{shown}` has no scheme: write http://{shown} or https://{shown}")),
        };
        let authority = uri.authority().ok_or_else(|| format!("`{shown}` has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!("`{shown}`: credentials in the URL are not supported; use --header"));
        }
        let host = uri.host().filter(|host| !host.is_empty()).ok_or_else(|| format!("`{shown}` has no host"))?;
        let default_port = if security == Security::Tls { 443 } else { 80 };
        let port = uri.port_u16().unwrap_or(default_port);
        if port == 0 {
            return Err(format!("`{shown}`: port 0 cannot be connected to"));
        }
        // `Uri::host` keeps IPv6 brackets; the connect address and TLS name need them off.
        let bare = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let header_host = if bare.contains(':') { format!("[{bare}]") } else { bare.clone() };
        let host_header = if port == default_port { header_host } else { format!("{header_host}:{port}") };
        let host_header = HeaderValue::from_str(&host_header).map_err(|_| format!("`{shown}`: host is not valid"))?;
        let path = uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        let path = if path.as_str().is_empty() { PathAndQuery::from_static("/") } else { path };
        Ok(Self { text: text.to_string(), security, host: bare, port, host_header, path })
    }

    /// The origin-form request target for `path` (a path and query starting with `/`),
    /// relative to nothing: device-api's routes are absolute paths under the target.
    pub fn origin(&self, path: &str) -> Result<Uri, String> {
        let base = self.path.path().trim_end_matches('/');
        Uri::try_from(format!("{base}{path}")).map_err(|error| format!("`{base}{path}`: {error}"))
    }

    /// The target's own path and query as an origin-form URI.
    pub fn own_origin(&self) -> Uri {
        Uri::from(self.path.clone())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_carries_the_port_only_when_it_is_not_the_default() {
        let target = Target::parse("http://127.0.0.1:8080/probe?x=1").unwrap();
        assert_eq!(target.host_header, "127.0.0.1:8080");
        assert_eq!(target.path.as_str(), "/probe?x=1");
        assert_eq!(Target::parse("http://example.test/").unwrap().host_header, "example.test");
        assert_eq!(Target::parse("http://example.test:80").unwrap().host_header, "example.test");
        assert_eq!(Target::parse("https://example.test:443/a").unwrap().host_header, "example.test");
        assert_eq!(Target::parse("https://example.test:8443/a").unwrap().host_header, "example.test:8443");
        let v6 = Target::parse("http://[::1]:9000/").unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.host_header, "[::1]:9000");
    }

    #[test]
    fn paths_default_to_slash_and_join_under_the_target() {
        let target = Target::parse("http://h:1").unwrap();
        assert_eq!(target.own_origin(), "/");
        assert_eq!(target.origin("/login").unwrap(), "/login");
        let under = Target::parse("http://h:1/api/").unwrap();
        assert_eq!(under.origin("/login").unwrap(), "/api/login");
    }

    #[test]
    fn bad_targets_are_refused_in_words() {
        for (text, words) in [
            ("", "is not a URL"),
            ("127.0.0.1:8080", "no scheme"),
            ("ftp://h/", "not http or https"),
            ("http://user:pw@h/", "credentials"),
            ("http://h:0/", "port 0"),
            ("http:///x", "not a URL"),
        ] {
            let error = Target::parse(text).unwrap_err();
            assert!(error.contains(words), "{text}: {error}");
        }
    }
}
