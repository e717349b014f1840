//! The test databases: which engine `ODS_TEST_DB` names, and one fresh PostgreSQL or
//! MariaDB database per test server, made and dropped with the engines' own clients.

use std::process::Command;

use super::hex_id;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
    MySql,
}

pub fn engine() -> Engine {
    match std::env::var("ODS_TEST_DB").unwrap_or_default().as_str() {
        "" | "sqlite" => Engine::Sqlite,
        "postgres" | "postgresql" => Engine::Postgres,
        "mysql" | "mariadb" => Engine::MySql,
        other => panic!("ODS_TEST_DB={other:?}: use sqlite, postgres or mysql"),
    }
}

fn pg_host() -> String {
    std::env::var("ODS_TEST_PG_HOST").unwrap_or_else(|_| "127.0.0.1:5432".into())
}
fn my_host() -> String {
    std::env::var("ODS_TEST_MYSQL_HOST").unwrap_or_else(|_| "127.0.0.1:3306".into())
}

/// A database made for one server of one test; dropped with it.
pub struct TestDb {
    pub url: Option<String>,
    name: String,
    engine: Engine,
}

fn run_sql(engine: Engine, sql: &str) {
    let out = match engine {
        Engine::Postgres => {
            let (h, p) = pg_host()
                .split_once(':')
                .map(|(h, p)| (h.to_string(), p.to_string()))
                .unwrap();
            Command::new("psql")
                .args([
                    "-h",
                    &h,
                    "-p",
                    &p,
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-qc",
                    sql,
                ])
                .output()
        }
        Engine::MySql => {
            let (h, p) = my_host()
                .split_once(':')
                .map(|(h, p)| (h.to_string(), p.to_string()))
                .unwrap();
            Command::new("mariadb")
                .args(["-h", &h, "-P", &p, "-u", "root", "-e", sql])
                .output()
        }
        Engine::Sqlite => return,
    }
    .expect("running the database client (psql / mariadb)");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestDb {
    pub fn create() -> TestDb {
        let engine = engine();
        let name = format!("ods_t_{}", hex_id());
        let url = match engine {
            Engine::Sqlite => None,
            Engine::Postgres => {
                run_sql(engine, &format!("CREATE DATABASE {name}"));
                Some(format!("postgres://postgres@{}/{name}", pg_host()))
            }
            Engine::MySql => {
                run_sql(
                    engine,
                    &format!("CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"),
                );
                Some(format!("mysql://root@{}/{name}", my_host()))
            }
        };
        TestDb { url, name, engine }
    }
}

impl TestDb {
    /// Drops the database and creates it again, empty (a lost database server, for
    /// restore tests). SQLite lives in the data directory: nothing to do here.
    pub fn recreate(&self) {
        match self.engine {
            Engine::Postgres => {
                run_sql(
                    self.engine,
                    &format!("DROP DATABASE {} WITH (FORCE)", self.name),
                );
                run_sql(self.engine, &format!("CREATE DATABASE {}", self.name));
            }
            Engine::MySql => {
                run_sql(self.engine, &format!("DROP DATABASE {}", self.name));
                run_sql(
                    self.engine,
                    &format!(
                        "CREATE DATABASE {} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
                        self.name
                    ),
                );
            }
            Engine::Sqlite => {}
        }
    }

    /// Another server's database, used but not dropped (a second node of one site).
    pub fn shared(url: String) -> TestDb {
        TestDb {
            url: Some(url),
            name: String::new(),
            engine: Engine::Sqlite,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match self.engine {
            Engine::Postgres => run_sql(
                self.engine,
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ),
            Engine::MySql => run_sql(
                self.engine,
                &format!("DROP DATABASE IF EXISTS {}", self.name),
            ),
            Engine::Sqlite => {}
        }
    }
}
