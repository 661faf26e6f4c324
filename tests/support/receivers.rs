//! Real receivers for the notification tests, each started by the test on 127.0.0.1 and
//! stopped when dropped: an SMTP server (PyPI's aiosmtpd, each mail written to a file), a syslog
//! daemon (Debian's rsyslog in the foreground, listening on UDP and TCP, writing the fields it
//! parsed out of each RFC 5424 record to a file), and an HTTP receiver for webhooks (axum,
//! in-process). `.ci/run` installs the first two. Without one, a test fails when CI is set and
//! is skipped with the reason otherwise.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;

use super::wait::eventually_blocking;

/// A receiver this machine lacks: fails under CI, says why and lets the test skip otherwise.
fn missing(what: &str, how: &str) -> Option<std::convert::Infallible> {
    if std::env::var_os("CI").is_some() {
        panic!("{what} is not installed, and CI is set: {how} (.ci/run installs it)");
    }
    eprintln!("SKIPPED: {what} is not installed ({how}); CI would fail here");
    None
}

/// A free port on 127.0.0.1 for a receiver that cannot listen on port 0 (TCP and UDP both
/// free, so either may use it).
pub fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const SMTP_SINK: &str = r#"
import os, signal, sys
from aiosmtpd.controller import Controller

class Sink:
    async def handle_DATA(self, server, session, envelope):
        n = len(os.listdir(sys.argv[2]))
        tmp = os.path.join(sys.argv[2], ".%05d.tmp" % n)
        with open(tmp, "wb") as f:
            f.write(envelope.content)
        os.rename(tmp, os.path.join(sys.argv[2], "%05d.eml" % n))
        return "250 OK"

tls = None
if len(sys.argv) > 4:
    import ssl
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(sys.argv[3], sys.argv[4])
c = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]), tls_context=tls,
               require_starttls=tls is not None)
c.start()
print("ready", flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
c.stop()
"#;

/// aiosmtpd on 127.0.0.1, writing each mail it receives into its folder.
pub struct SmtpSink {
    _child: Killed,
    pub port: u16,
    dir: PathBuf,
}

impl SmtpSink {
    pub fn start(dir: &Path) -> Option<SmtpSink> {
        SmtpSink::launch(dir, None)
    }

    /// One that insists on STARTTLS with this certificate and key (PEM files).
    pub fn with_starttls(dir: &Path, tls: &TestCa) -> Option<SmtpSink> {
        SmtpSink::launch(dir, Some(tls))
    }

    fn launch(dir: &Path, tls: Option<&TestCa>) -> Option<SmtpSink> {
        let has = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !has {
            let never = missing("PyPI's aiosmtpd", "pip install aiosmtpd")?;
            match never {}
        }
        let mails = dir.join("mails");
        std::fs::create_dir_all(&mails).unwrap();
        let script = dir.join("smtp_sink.py");
        std::fs::write(&script, SMTP_SINK).unwrap();
        let port = free_port();
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .arg(&mails)
            .args(tls.iter().flat_map(|t| [&t.cert, &t.key]))
            .stdout(Stdio::piped())
            // Its tracebacks (a client that drops the handshake on purpose) go to a file.
            .stderr(std::fs::File::create(dir.join("smtp_sink.err")).unwrap())
            .spawn()
            .expect("python3 starts");
        let mut ready = String::new();
        use std::io::BufRead as _;
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready.trim(), "ready", "the SMTP sink started");
        Some(SmtpSink {
            _child: Killed(child),
            port,
            dir: mails,
        })
    }

    /// Every mail received so far, oldest first, as text.
    pub fn mails(&self) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned())
            .collect()
    }

    /// `[[notify.email]]` for this sink.
    pub fn channel(&self) -> String {
        format!(
            "[[notify.email]]\nserver = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\n\
             from = \"vrbulk@example.org\"\nto = [\"dr-team@example.org\"]\n",
            self.port
        )
    }
}

/// rsyslogd in the foreground on 127.0.0.1, UDP and TCP, writing one line per record:
/// `VERSION|APP|MSGID|STRUCTURED-DATA|MSG`, as the daemon parsed them.
pub struct Syslog {
    _child: Killed,
    pub udp: u16,
    pub tcp: u16,
    /// Its TLS port (RFC 5425), when started with a certificate.
    pub tls: Option<u16>,
    out: PathBuf,
}

/// One record as the daemon parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub version: String,
    pub app: String,
    pub msgid: String,
    pub structured_data: String,
    pub msg: String,
}

impl Syslog {
    pub fn start(dir: &Path) -> Option<Syslog> {
        Syslog::launch(dir, None)
    }

    /// One that also listens for TLS with this certificate (rsyslog's gtls driver).
    pub fn with_tls(dir: &Path, tls: &TestCa) -> Option<Syslog> {
        let gtls = [
            "/usr/lib/x86_64-linux-gnu/rsyslog",
            "/usr/lib/rsyslog",
            "/usr/lib64/rsyslog",
        ]
        .iter()
        .any(|d| Path::new(d).join("lmnsd_gtls.so").exists());
        if !gtls {
            let never = missing("Debian's rsyslog-gnutls", "apt-get install rsyslog-gnutls")?;
            match never {}
        }
        Syslog::launch(dir, Some(tls))
    }

    fn launch(dir: &Path, tls: Option<&TestCa>) -> Option<Syslog> {
        let daemon = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let Some(daemon) = daemon else {
            let never = missing("Debian's rsyslog", "apt-get install rsyslog")?;
            match never {}
        };
        let dir = dir.join("syslog");
        std::fs::create_dir_all(&dir).unwrap();
        let udp = free_port();
        let out = dir.join("out.log");
        let port_file = dir.join("tcp.port");
        let conf = dir.join("rsyslog.conf");
        let tls_file = dir.join("tls.port");
        let (global_tls, tls_input) = match tls {
            Some(t) => (
                format!(
                    " DefaultNetstreamDriverCAFile=\"{}\" DefaultNetstreamDriverCertFile=\"{}\" \
                     DefaultNetstreamDriverKeyFile=\"{}\"",
                    t.ca.display(),
                    t.cert.display(),
                    t.key.display()
                ),
                format!(
                    "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"0\" listenPortFileName=\"{}\" \
                     streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"anon\")\n",
                    tls_file.display()
                ),
            ),
            None => (String::new(), String::new()),
        };
        std::fs::write(
            &conf,
            format!(
                "global(workDirectory=\"{d}\"{global_tls})\n\
                 module(load=\"imudp\")\nmodule(load=\"imtcp\")\n\
                 input(type=\"imudp\" address=\"127.0.0.1\" port=\"{udp}\")\n\
                 input(type=\"imtcp\" address=\"127.0.0.1\" port=\"0\" listenPortFileName=\"{p}\")\n\
                 {tls_input}\
                 template(name=\"fields\" type=\"string\" \
                 string=\"%protocol-version%|%app-name%|%msgid%|%structured-data%|%msg%\\n\")\n\
                 *.* action(type=\"omfile\" file=\"{o}\" template=\"fields\")\n",
                d = dir.display(),
                p = port_file.display(),
                o = out.display()
            ),
        )
        .unwrap();
        let child = Command::new(daemon)
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("rsyslogd starts");
        let child = Killed(child);
        let tcp = eventually_blocking(Duration::from_secs(20), "rsyslogd to listen", || {
            let tcp: Option<u16> = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.trim().parse().ok());
            // Its UDP port is taken once it listens there too.
            let tls_ready = tls.is_none() || tls_file.exists();
            tcp.filter(|_| tls_ready && UdpSocket::bind(("127.0.0.1", udp)).is_err())
        });
        let tls = tls.and_then(|_| std::fs::read_to_string(&tls_file).ok()?.trim().parse().ok());
        Some(Syslog {
            _child: child,
            udp,
            tcp,
            tls,
            out,
        })
    }

    pub fn records(&self) -> Vec<Record> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut f = l.splitn(5, '|');
                Some(Record {
                    version: f.next()?.into(),
                    app: f.next()?.into(),
                    msgid: f.next()?.into(),
                    structured_data: f.next()?.into(),
                    msg: f.next()?.into(),
                })
            })
            .collect()
    }

    /// `[[notify.syslog]]` for this daemon over UDP and over TCP.
    pub fn channels(&self) -> String {
        format!(
            "[[notify.syslog]]\nname = \"syslog-udp\"\naddress = \"127.0.0.1:{}\"\n\
             [[notify.syslog]]\nname = \"syslog-tcp\"\naddress = \"127.0.0.1:{}\"\ntransport = \"tcp\"\n",
            self.udp, self.tcp
        )
    }
}

/// A CA of the test's own and a certificate it signed for 127.0.0.1, as PEM files: what a
/// TLS receiver presents and a channel's `ca_file` trusts.
pub struct TestCa {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    pub fn new(dir: &Path) -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let write = |name: &str, pem: String| {
            let p = dir.join(name);
            std::fs::write(&p, pem).unwrap();
            p
        };
        TestCa {
            ca: write("ca.pem", ca_cert.pem()),
            cert: write("receiver.pem", leaf.pem()),
            key: write("receiver.key", leaf_key.serialize_pem()),
        }
    }
}

/// A webhook POST as received.
#[derive(Debug, Clone)]
pub struct Hook {
    pub id: Option<String>,
    pub body: serde_json::Value,
}

/// An HTTP receiver for webhooks, recording every POST to `/hook`.
pub struct WebhookSink {
    pub addr: SocketAddr,
    got: Arc<Mutex<Vec<Hook>>>,
    handle: axum_server::Handle,
}

impl WebhookSink {
    pub async fn start() -> WebhookSink {
        WebhookSink::on(TcpListener::bind("127.0.0.1:0").unwrap()).await
    }

    /// On a port the test chose (to come up where a channel already points).
    pub async fn on(listener: TcpListener) -> WebhookSink {
        let got: Arc<Mutex<Vec<Hook>>> = Arc::default();
        let app = Router::new()
            .route(
                "/hook",
                post(
                    async |State(got): State<Arc<Mutex<Vec<Hook>>>>,
                           headers: HeaderMap,
                           body: axum::Json<serde_json::Value>| {
                        got.lock().unwrap().push(Hook {
                            id: headers
                                .get("x-vrbulk-message-id")
                                .and_then(|v| v.to_str().ok())
                                .map(String::from),
                            body: body.0,
                        });
                        StatusCode::NO_CONTENT
                    },
                ),
            )
            .with_state(got.clone());
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let handle = axum_server::Handle::new();
        let server = axum_server::from_tcp(listener)
            .handle(handle.clone())
            .serve(app.into_make_service());
        tokio::spawn(server);
        WebhookSink { addr, got, handle }
    }

    pub fn hooks(&self) -> Vec<Hook> {
        self.got.lock().unwrap().clone()
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn channel(&self) -> String {
        format!("[[notify.webhook]]\nurl = \"{}\"\n", self.url())
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}
