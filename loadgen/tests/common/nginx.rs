//! A private nginx: someone else's HTTP server, the way loadgen's users meet one. Its
//! own configuration, pid file, logs and temp directories in a temporary directory,
//! plain HTTP/1.1 and h2c on free ports, HTTPS (HTTP/1.1 and h2 by ALPN) with a
//! throw-away certificate; stopped when dropped. The access log records what nginx
//! received, field by field, so tests read the request line and headers a server
//! really saw.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The device id nginx hands out on `POST /login` (a UUID, as device-api's are).
pub const DEVICE_ID: &str = "6f1c2b9e-0d8a-4c57-9a51-3e2f4b7d8c10";

pub struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`
    pub http: String,
    /// `http://127.0.0.1:PORT` speaking h2c (HTTP/2 with prior knowledge).
    pub h2c: String,
    /// `https://localhost:PORT` (the certificate names `localhost` and 127.0.0.1).
    pub https: String,
    /// The CA that signed the server's certificate (PEM).
    pub ca: PathBuf,
}

/// One access-log line.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    pub request: String,
    pub host: String,
    pub user_agent: String,
    pub content_length: String,
    pub content_type: String,
    pub connection: u64,
    pub connection_requests: u64,
    pub protocol: String,
    pub tls: String,
    pub status: u16,
    pub cookie: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn nginx_binary() -> PathBuf {
    for candidate in ["/usr/sbin/nginx", "/usr/local/sbin/nginx"] {
        if Path::new(candidate).is_file() {
            return PathBuf::from(candidate);
        }
    }
    panic!("nginx not found: scripts/install-deps installs it (Debian package nginx-light)");
}

impl Nginx {
    pub fn start() -> Self {
        Self::start_on(None)
    }

    /// …with nginx (one worker) pinned to `cpu` when given (taskset, util-linux).
    pub fn start_on(cpu: Option<u32>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        let (http, h2c, https) = (free_port(), free_port(), free_port());
        let ca = write_certificates(path);
        let root = nix::unistd::geteuid().is_root();
        let d = path.display();
        let locations = format!(
            r#"
        location = /login {{ default_type application/json; return 200 '{{"username":"{DEVICE_ID}"}}'; }}
        location = /measurement {{ return 204; }}
        location / {{ default_type text/plain; return 200 "ok\n"; }}"#
        );
        let config = format!(
            r#"{user}
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    log_format fields '$request|$http_host|$http_user_agent|$content_length|$content_type|$connection|$connection_requests|$server_protocol|$ssl_protocol|$status|$http_servant_auth_cookie';
    access_log {d}/access.log fields;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{http};{locations}
    }}
    server {{
        listen 127.0.0.1:{h2c} http2;{locations}
    }}
    server {{
        listen 127.0.0.1:{https} ssl http2;
        ssl_certificate {d}/server.pem;
        ssl_certificate_key {d}/server.key;{locations}
    }}
}}
"#,
            user = if root { "user root;" } else { "" },
        );
        std::fs::write(path.join("nginx.conf"), config).unwrap();
        let mut command = match cpu {
            Some(cpu) => {
                let mut taskset = Command::new("taskset");
                taskset.args(["-c", &cpu.to_string()]).arg(nginx_binary());
                taskset
            }
            None => Command::new(nginx_binary()),
        };
        let child = command
            .args(["-p", &path.display().to_string(), "-c", &path.join("nginx.conf").display().to_string()])
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(path.join("stderr.log")).unwrap())
            .spawn()
            .expect("nginx starts");
        let mut nginx = Self {
            child,
            http: format!("http://127.0.0.1:{http}"),
            h2c: format!("http://127.0.0.1:{h2c}"),
            https: format!("https://localhost:{https}"),
            ca,
            dir,
        };
        nginx.wait_ready([http, h2c, https]);
        nginx
    }

    fn wait_ready(&mut self, ports: [u16; 3]) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if ports.iter().all(|port| std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok()) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("nginx exited ({status}) at start:\n{}", self.logs());
            }
            if Instant::now() > deadline {
                panic!("nginx never listened on {ports:?}:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("error.log"))
    }

    /// Every access-log line so far (nginx writes each as a request ends).
    pub fn access_log(&self) -> Vec<Logged> {
        let text = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        text.lines()
            .map(|line| {
                let fields: Vec<&str> = line.split('|').collect();
                assert_eq!(fields.len(), 11, "unexpected access-log line {line:?}");
                Logged {
                    request: fields[0].into(),
                    host: fields[1].into(),
                    user_agent: fields[2].into(),
                    content_length: fields[3].into(),
                    content_type: fields[4].into(),
                    connection: fields[5].parse().unwrap(),
                    connection_requests: fields[6].parse().unwrap(),
                    protocol: fields[7].into(),
                    tls: fields[8].into(),
                    status: fields[9].parse().unwrap(),
                    cookie: fields[10].into(),
                }
            })
            .collect()
    }

    /// Empties the access log (nginx keeps appending to the same file).
    pub fn clear_log(&self) {
        std::fs::write(self.dir.path().join("access.log"), "").unwrap();
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: nginx's graceful stop; then make sure.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGQUIT);
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA and a server certificate for `localhost` and 127.0.0.1 signed by it; returns
/// the CA's path.
fn write_certificates(dir: &Path) -> PathBuf {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server_params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server = server_params.signed_by(&server_key, &issuer).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
    dir.join("ca.pem")
}
