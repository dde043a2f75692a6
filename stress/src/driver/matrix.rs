//! The components of a driver run: grapesy's four servers and its client matrix
//! (8 patterns × 4 servers × stable/unstable = 64 clients), narrowed by options for
//! short test runs.

use std::path::Path;

use serde::Serialize;

/// The servers, in port order from `--base-port`: (name, secure, stable).
pub const SERVERS: [(&str, bool, bool); 4] = [
    ("insecure-unstable", false, false),
    ("secure-unstable", true, false),
    ("insecure-stable", false, true),
    ("secure-stable", true, true),
];

/// The client patterns: (name, client flags).
pub const PATTERNS: [(&str, &[&str]); 8] = [
    ("unary-many-connections", &["--num-connections", "50", "--num-calls", "1", "--non-streaming"]),
    ("unary-many-calls", &["--num-connections", "1", "--num-calls", "100", "--non-streaming"]),
    ("client-stream-endless", &["--client-streaming", "0"]),
    ("client-stream-many", &["--num-calls", "100", "--client-streaming", "10"]),
    ("server-stream-endless", &["--server-streaming", "0"]),
    ("server-stream-many", &["--num-calls", "100", "--server-streaming", "10"]),
    ("bidi-endless", &["--bidi-streaming", "0"]),
    ("bidi-many", &["--num-calls", "100", "--bidi-streaming", "10"]),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Server,
    Client,
}

/// One process the driver runs (and, when unstable, keeps killing and restarting).
#[derive(Clone, Debug, Serialize)]
pub struct ComponentSpec {
    pub name: String,
    pub role: Role,
    pub stable: bool,
    /// Arguments after the binary.
    pub args: Vec<String>,
    /// Memory ceiling, bytes.
    pub ceiling: u64,
    /// For servers: the port to wait for.
    #[serde(skip)]
    pub port: Option<u16>,
}

/// What to include.
pub struct MatrixChoice<'a> {
    pub base_port: u16,
    pub servers: &'a [String],
    pub patterns: &'a [String],
    pub client_stabilities: &'a [String],
    pub server_ceiling: u64,
    pub client_ceiling: u64,
    pub certs_dir: &'a Path,
}

/// Every component for `choice`, servers first.
pub fn components(choice: &MatrixChoice<'_>) -> Vec<ComponentSpec> {
    let certs = choice.certs_dir;
    let mut components = Vec::new();
    let chosen_servers: Vec<(usize, &(&str, bool, bool))> =
        SERVERS.iter().enumerate().filter(|(_, (name, _, _))| choice.servers.iter().any(|s| s == name)).collect();
    for (index, (name, secure, stable)) in &chosen_servers {
        let port = choice.base_port + *index as u16;
        let mut args: Vec<String> =
            ["server", "--listen", &format!("127.0.0.1:{port}"), "--metrics-listen", "none"].map(String::from).to_vec();
        if *secure {
            args.extend(["--tls-cert".into(), certs.join("server.pem").display().to_string()]);
            args.extend(["--tls-key".into(), certs.join("server.key").display().to_string()]);
        }
        components.push(ComponentSpec {
            name: format!("server-{name}"),
            role: Role::Server,
            stable: *stable,
            args,
            ceiling: choice.server_ceiling,
            port: Some(port),
        });
    }
    for (pattern, flags) in PATTERNS.iter().filter(|(name, _)| choice.patterns.iter().any(|p| p == name)) {
        for (index, (server, secure, _)) in &chosen_servers {
            for client_stability in choice.client_stabilities {
                let port = choice.base_port + *index as u16;
                let scheme = if *secure { "https" } else { "http" };
                let mut args: Vec<String> =
                    ["client", "--target", &format!("{scheme}://127.0.0.1:{port}"), "--repeat", "--max-attempts", "0"]
                        .map(String::from)
                        .to_vec();
                if *secure {
                    args.extend(["--ca".into(), certs.join("ca.pem").display().to_string()]);
                }
                args.extend(flags.iter().map(|flag| flag.to_string()));
                components.push(ComponentSpec {
                    name: format!("client-{pattern}-to-{server}-{client_stability}"),
                    role: Role::Client,
                    stable: client_stability == "stable",
                    args,
                    ceiling: choice.client_ceiling,
                    port: None,
                });
            }
        }
    }
    components
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_matrix_is_four_servers_and_sixty_four_clients() {
        let all = |names: &[&str]| names.iter().map(|name| name.to_string()).collect::<Vec<_>>();
        let servers = all(&SERVERS.map(|(name, _, _)| name));
        let patterns = all(&PATTERNS.map(|(name, _)| name));
        let stabilities = all(&["stable", "unstable"]);
        let components = components(&MatrixChoice {
            base_port: 50000,
            servers: &servers,
            patterns: &patterns,
            client_stabilities: &stabilities,
            server_ceiling: 1,
            client_ceiling: 1,
            certs_dir: Path::new("/certs"),
        });
        assert_eq!(components.iter().filter(|c| c.role == Role::Server).count(), 4);
        assert_eq!(components.iter().filter(|c| c.role == Role::Client).count(), 64);
        assert_eq!(components.iter().filter(|c| !c.stable).count(), 2 + 32);
        let names: std::collections::HashSet<_> = components.iter().map(|c| &c.name).collect();
        assert_eq!(names.len(), 68, "names are unique");
        let secure_stable = components.iter().find(|c| c.name == "server-secure-stable").unwrap();
        assert!(secure_stable.args.contains(&"127.0.0.1:50003".to_string()));
        assert!(secure_stable.args.contains(&"--tls-cert".to_string()));
    }
}
