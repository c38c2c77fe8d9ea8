//! PostgreSQL for tests: `TEST_DATABASE_URL` when set, otherwise a throwaway
//! cluster started from the installed server binaries and removed when the
//! test process exits. Each test gets a fresh database.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use sqlx::Connection;

const HOW_TO_PROVIDE: &str = "PostgreSQL tests need a server: set TEST_DATABASE_URL to a \
    postgres:// URL of a role that may create databases, or install the server binaries \
    (`apt-get install postgresql`) so the tests can start a throwaway cluster";

/// The server every test in this process shares, started on first use.
static SHARED: OnceLock<Result<SharedServer, String>> = OnceLock::new();

enum SharedServer {
    External(String),
    Cluster(Mutex<PgCluster>),
}

/// Returns the URL of a new, empty database on the shared server.
pub async fn fresh_database() -> String {
    let admin_url = shared_admin_url();
    let name = format!("tessera_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|err| panic!("cannot connect to {admin_url}: {err}. {HOW_TO_PROVIDE}"));
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|err| panic!("cannot create database {name}: {err}"));
    database_url(&admin_url, &name)
}

/// Replaces the database name in `admin_url`.
fn database_url(admin_url: &str, name: &str) -> String {
    let mut url = url::Url::parse(admin_url).expect("admin URL parses");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

fn shared_admin_url() -> String {
    let shared = SHARED.get_or_init(|| {
        if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
            return Ok(SharedServer::External(url));
        }
        PgCluster::start().map(|cluster| SharedServer::Cluster(Mutex::new(cluster)))
    });
    match shared {
        Ok(SharedServer::External(url)) => url.clone(),
        Ok(SharedServer::Cluster(cluster)) => cluster.lock().expect("cluster lock").admin_url(),
        Err(message) => panic!("{message}"),
    }
}

/// A PostgreSQL cluster in a temporary folder, on its own port. A watchdog
/// shell stops it and deletes the folder when this process exits, because
/// the watchdog's standard input closes then, however the process ends.
pub struct PgCluster {
    folder: PathBuf,
    bindir: PathBuf,
    port: u16,
    _watchdog: Child,
}

impl PgCluster {
    /// Creates and starts a cluster, or explains why it cannot.
    pub fn start() -> Result<Self, String> {
        let bindir = find_bindir().ok_or_else(|| HOW_TO_PROVIDE.to_owned())?;
        let folder = tempfile::Builder::new()
            .prefix("tessera-pg-")
            .tempdir()
            .map_err(|err| format!("cannot create a temporary folder: {err}"))?
            .keep();
        if running_as_root() {
            // initdb and pg_ctl refuse to run as root.
            run(Command::new("chown").arg("postgres:").arg(&folder))?;
        }
        run(as_postgres(&bindir.join("initdb"))
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(folder.join("data")))?;
        let watchdog = spawn_watchdog(&bindir, &folder)?;
        let mut cluster = Self {
            folder,
            bindir,
            port: free_port()?,
            _watchdog: watchdog,
        };
        cluster.resume()?;
        Ok(cluster)
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server, keeping its data, as an outage would.
    pub fn pause(&mut self) -> Result<(), String> {
        run(as_postgres(&self.bindir.join("pg_ctl"))
            .args(["-m", "fast", "-w", "stop", "-D"])
            .arg(self.folder.join("data")))
    }

    /// Starts the server (again) on its port.
    pub fn resume(&mut self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300",
            self.port,
            self.folder.display()
        );
        run(as_postgres(&self.bindir.join("pg_ctl"))
            .args(["-w", "-l"])
            .arg(self.folder.join("server.log"))
            .args(["-o", &options, "start", "-D"])
            .arg(self.folder.join("data")))
    }
}

/// The newest installed server's bin folder: `PG_BINDIR`, Debian's
/// `/usr/lib/postgresql/N/bin`, or `pg_config --bindir`.
fn find_bindir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("PG_BINDIR") {
        return Some(PathBuf::from(dir));
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return Some(bin);
    }
    let output = Command::new("pg_config").arg("--bindir").output().ok()?;
    let bin = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    bin.join("initdb").exists().then_some(bin)
}

fn spawn_watchdog(bindir: &Path, folder: &Path) -> Result<Child, String> {
    let script = r#"read _ ; "$0" -D "$1/data" -m immediate -w stop >/dev/null 2>&1 ; rm -rf "$1""#;
    let mut child = as_postgres(Path::new("sh"))
        .args(["-c", script])
        .arg(bindir.join("pg_ctl"))
        .arg(folder)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|err| format!("cannot start the cluster watchdog: {err}"))?;
    // Keep the pipe open but idle; it closes when this process exits.
    if let Some(stdin) = child.stdin.as_mut() {
        stdin.flush().ok();
    }
    Ok(child)
}

fn as_postgres(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn running_as_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
            .unwrap_or(false)
    })
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|err| format!("cannot find a free port: {err}"))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|err| format!("cannot find a free port: {err}"))
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|err| format!("cannot run {command:?}: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}
