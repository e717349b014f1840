//! The harness itself: a server starts on the configured engine and answers.
mod common;

#[tokio::test]
async fn server_starts_and_prints_the_first_login() {
    let s = common::Server::start().await;
    assert!(
        s.stdout_lines
            .iter()
            .any(|l| l.contains("First start: log in as admin")),
        "{:?}",
        s.stdout_lines
    );
    let about = s.get_json("/api/admin/about").await;
    assert_eq!(about["name"], "ODS");
}
