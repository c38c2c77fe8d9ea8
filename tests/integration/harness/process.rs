//! The real `tessera` binary as a subprocess: one-shot commands, and
//! `serve` on a loopback port stopped with SIGTERM.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub const BINARY: &str = env!("CARGO_BIN_EXE_tessera");

/// Builds a `tessera` command in `folder`, with no `TESSERA_*` variables inherited.
pub fn tessera(folder: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BINARY);
    command.current_dir(folder).args(args);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("TESSERA_")) {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command
}

pub fn run(folder: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    tessera(folder, args, env).output().unwrap()
}

/// Runs `tessera` with `input` on its standard input.
pub fn run_with_input(folder: &Path, args: &[&str], env: &[(&str, &str)], input: &str) -> Output {
    use std::io::Write;
    let mut child = tessera(folder, args, env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Parses the JSON document a successful `--json` command printed.
pub fn json_output(output: &Output) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stderr: {stderr}");
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Starts `tessera` with its output piped; [`stop`] collects it.
pub fn spawn(folder: &Path, args: &[&str], env: &[(&str, &str)]) -> Child {
    tessera(folder, args, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Sends SIGTERM and collects the output.
pub fn stop(child: Child) -> Output {
    terminate(&child);
    child.wait_with_output().unwrap()
}

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Polls `url` for up to 20 seconds; returns the first status received.
pub async fn wait_for(url: &str) -> Option<u16> {
    wait_with(&reqwest::Client::new(), url).await
}

/// Like [`wait_for`], sending the requests through `client`.
pub async fn wait_with(client: &reqwest::Client, url: &str) -> Option<u16> {
    for _ in 0..200 {
        if let Ok(response) = client.get(url).send().await {
            return Some(response.status().as_u16());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Returns a free loopback port. Another process may take it before the caller
/// binds it, which is unlikely enough for tests.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `tessera serve` process whose logs go to a file in its folder, so a
/// chatty server never blocks on a full pipe. Dropping it unstopped (a
/// failed test) kills the process.
pub struct ServeProcess {
    child: Option<Child>,
    log_file: std::path::PathBuf,
    /// `host:port` the process listens on.
    pub listen: String,
}

impl ServeProcess {
    /// Starts `tessera serve` plus `extra_args` on a free loopback port,
    /// given as `TESSERA_LISTEN`.
    pub fn start(folder: &Path, extra_args: &[&str], env: &[(&str, &str)]) -> Self {
        let listen = format!("127.0.0.1:{}", free_port());
        Self::start_at(folder, &listen, extra_args, env)
    }

    /// Starts `tessera serve` plus `extra_args` listening on `listen`, for
    /// callers that name the port in other settings such as the issuer.
    pub fn start_at(
        folder: &Path,
        listen: &str,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let listen = listen.to_owned();
        let log_file = folder.join(format!("serve-{}.log", listen.replace(':', "-")));
        let log = std::fs::File::create(&log_file).unwrap();
        let mut args = vec!["serve"];
        args.extend_from_slice(extra_args);
        let child = tessera(folder, &args, env)
            .env("TESSERA_LISTEN", &listen)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Self {
            child: Some(child),
            log_file,
            listen,
        }
    }

    /// Sends SIGTERM, waits for the exit, and returns whether it succeeded
    /// and what the process logged.
    pub fn stop(mut self) -> (bool, String) {
        let mut child = self.child.take().unwrap();
        terminate(&child);
        let status = child.wait().unwrap();
        (status.success(), self.logs())
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}
