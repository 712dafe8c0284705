#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Shared by the system tests: `keyward server` processes (stopped on drop), the CLI, the
//! databases.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use keyward_server::db::Db;

pub const KEYWARD: &str = env!("CARGO_BIN_EXE_keyward");

pub struct Server {
    child: Option<Child>,
    port: u16,
    data: PathBuf,
    db: String,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    pub fn start(data: &Path, db: &str) -> Self {
        let mut s = Self {
            child: None,
            port: free_port(),
            data: data.to_path_buf(),
            db: db.to_string(),
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.with_extension("log"))
            .unwrap();
        let child = Command::new(KEYWARD)
            .args(["server", "--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--data-dir")
            .arg(&self.data)
            .args(["--db", &self.db])
            .env("KEYWARD_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, wait, start again on the same port, data directory and database.
    pub fn kill9_and_restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/rt/produce", self.port)
    }

    pub fn provision_url(&self) -> String {
        format!("http://127.0.0.1:{}/rt/provision", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn keyward(args: &[&str], dir: &Path) -> Output {
    Command::new(KEYWARD)
        .args(args)
        .current_dir(dir)
        .env("KEYWARD_LOG", "warn")
        .output()
        .unwrap()
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// One runtime for the test process: a database pool's connections belong to the runtime that
/// opened them, so every query must run there.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

pub fn db(url: &str) -> Db {
    block(Db::open(url, 2)).unwrap()
}

pub fn block<T>(f: impl Future<Output = T>) -> T {
    runtime().block_on(f)
}

pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("keyward-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A fresh database on the PostgreSQL server the test script started.
pub fn fresh_postgres(admin: &str, tag: &str) -> String {
    use sqlx::Connection;
    let name = format!("keyward_{tag}_{}", std::process::id());
    block(async {
        sqlx::any::install_default_drivers();
        let mut c = sqlx::AnyConnection::connect(admin).await.unwrap();
        let drop = format!("DROP DATABASE IF EXISTS {name}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
            .execute(&mut c)
            .await
            .unwrap();
        let create = format!("CREATE DATABASE {name}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(create))
            .execute(&mut c)
            .await
            .unwrap();
    });
    let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
    format!("{base}/{name}")
}

/// Runs a suite on a fresh SQLite database in a temporary directory.
pub fn on_sqlite(tag: &str, suite: fn(&Path, &str)) {
    let work = temp_dir(&format!("{tag}-sqlite"));
    let url = format!("sqlite://{}", work.join("keyward.db").display());
    suite(&work, &url);
    let _ = std::fs::remove_dir_all(&work);
}

/// Runs a suite on a fresh database of the PostgreSQL server the test script started (skipped
/// without one, unless KEYWARD_REQUIRE_POSTGRES says it must be there).
pub fn on_postgres(tag: &str, suite: fn(&Path, &str)) {
    let Ok(admin) = std::env::var("KEYWARD_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("KEYWARD_REQUIRE_POSTGRES").is_none(),
            "KEYWARD_REQUIRE_POSTGRES is set but KEYWARD_TEST_POSTGRES_URL is not"
        );
        eprintln!("skipped: set KEYWARD_TEST_POSTGRES_URL (scripts/test does)");
        return;
    };
    let work = temp_dir(&format!("{tag}-postgres"));
    let url = fresh_postgres(&admin, tag);
    suite(&work, &url);
    let _ = std::fs::remove_dir_all(&work);
}
