//! A real llama.cpp server (`llama-cpp-python[server]`) on a free loopback
//! port, serving a GGUF model as an OpenAI-compatible endpoint.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Environment variable naming the Python interpreter that has
/// `llama-cpp-python[server]` installed.
pub const PYTHON_VAR: &str = "WOW_LLAMA_SERVER_PYTHON";

/// Time the server may take to load the model and reply.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// Lets one server run at a time: on two cores, parallel servers slow each
/// other past the tests' time limits.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A running server; dropping it kills the process.
pub struct LlamaServer {
    child: Option<Child>,
    model: PathBuf,
    pub port: u16,
    log: PathBuf,
    _turn: MutexGuard<'static, ()>,
}

/// Returns the Python that runs the server: `$WOW_LLAMA_SERVER_PYTHON`, else
/// the virtual environment `.ci/run` installs in the cache folder.
pub fn server_python() -> PathBuf {
    if let Some(python) = std::env::var_os(PYTHON_VAR).filter(|v| !v.is_empty()) {
        return PathBuf::from(python);
    }
    wow::model::default_cache_dir().join("llama-cpp-venv/bin/python")
}

impl LlamaServer {
    /// Starts a server for `model` on a free port and waits until it
    /// replies. Waits first while another test's server runs.
    pub fn start(model: &Path) -> Self {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let port = free_port();
        let mut server = Self {
            child: None,
            model: model.to_path_buf(),
            port,
            log: std::env::temp_dir().join(format!("wow-llama-server-{port}.log")),
            _turn: turn,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let python = server_python();
        assert!(
            python.is_file(),
            "no Python with llama-cpp-python at {}: run `bash .ci/run`, which installs it, or set {PYTHON_VAR}",
            python.display()
        );
        let log_file = std::fs::File::create(&self.log).expect("create the server log");
        let child = Command::new(&python)
            .args([
                "-m",
                "llama_cpp.server",
                "--host",
                "127.0.0.1",
                "--n_ctx",
                "2048",
                "--logits_all",
                "true",
            ])
            .args([
                "--port",
                &self.port.to_string(),
                "--n_threads",
                "2",
                "--verbose",
                "false",
            ])
            .arg("--model")
            .arg(&self.model)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("start llama_cpp.server");
        self.child = Some(child);
        self.wait_ready();
    }

    /// Returns the endpoint spec the `wow` CLI takes, `BASE_URL#MODEL`.
    pub fn spec(&self) -> String {
        format!("http://127.0.0.1:{}/v1#smollm2", self.port)
    }

    /// Kills the server process and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn wait_ready(&mut self) {
        let started = Instant::now();
        while started.elapsed() < START_TIMEOUT {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("llama_cpp.server exited with {status}: {}", self.log_tail());
            }
            if get_status(self.port, "/v1/models") == Some(200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!(
            "llama_cpp.server did not answer within {START_TIMEOUT:?}: {}",
            self.log_tail()
        );
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Returns a port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("bind a loopback port")
}

/// Sends a plain HTTP GET and returns the status code.
fn get_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    reply.split_whitespace().nth(1)?.parse().ok()
}
