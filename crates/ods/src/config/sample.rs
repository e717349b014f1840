//! The sample configuration file, written from the keys' own declarations in
//! [`Settings`] (help, variable, flag, default), so it lists every key and cannot drift
//! from them: `deploy/debian/ods.toml`, shipped as `/etc/ods/ods.toml`, is this text
//! (a test compares the two). A key without a default is shown as `# key = "VALUE"`,
//! one at its default as `#key = default`.

use clap::{Args, Command};

use super::Settings;

/// The keys the Debian package sets (uncommented) rather than leaving at their
/// built-in defaults.
pub const DEBIAN: &[(&str, &str)] = &[("data_dir", "/var/lib/ods")];

/// The whole file: every key, documented, commented out at its default unless `set`
/// gives it a value.
pub fn render(set: &[(&str, &str)]) -> String {
    let mut out = String::from(
        "# ODS configuration file, read by every `ods` command through ODS_CONF (the\n\
         # systemd unit sets ODS_CONF=/etc/ods/ods.toml). Every key is listed, with its\n\
         # environment variable and flag; a commented-out key is at its built-in default.\n\
         # Precedence: flag > environment > this file > default. A key may also be\n\
         # written as its variable's name (any letter case). Keep this file private\n\
         # (0640 root:ods): it may hold the database password and the keys.\n",
    );
    let keys = Settings::augment_args(Command::new("ods"));
    for arg in keys.get_arguments() {
        let id = arg.get_id().as_str();
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        out.push('\n');
        for line in wrap(&help, 86) {
            out.push_str("# ");
            out.push_str(&line);
            out.push('\n');
        }
        let env = arg
            .get_env()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default();
        let long = arg.get_long().unwrap_or(id);
        out.push_str(&format!("# (environment {env}, flag --{long})\n"));
        let default: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        match set.iter().find(|(k, _)| *k == id) {
            Some((_, v)) => out.push_str(&format!("{id} = {}\n", value(v))),
            None if default.is_empty() => {
                let placeholder = arg
                    .get_value_names()
                    .and_then(|n| n.first())
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "VALUE".into());
                // "# key" (a space): no default; "#key": its default.
                out.push_str(&format!("# {id} = \"{placeholder}\"\n"));
            }
            None => out.push_str(&format!("#{id} = {}\n", value(&default.join(",")))),
        }
    }
    out
}

/// A TOML value for `v`: bare when it is a number or a boolean, quoted otherwise.
fn value(v: &str) -> String {
    if v.parse::<i64>().is_ok() || v == "true" || v == "false" {
        v.to_string()
    } else {
        toml::Value::String(v.to_string()).to_string()
    }
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::super::ConfFile;

    const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/debian/ods.toml");

    #[test]
    fn the_shipped_file_is_the_rendered_one() {
        let text = super::render(super::DEBIAN);
        if std::env::var_os("UPDATE_SNAPSHOT").is_some() {
            std::fs::write(SHIPPED, &text).unwrap();
        }
        let shipped = std::fs::read_to_string(SHIPPED).unwrap_or_default();
        assert!(
            shipped == text,
            "deploy/debian/ods.toml differs from the keys in config/settings.rs: \
             run UPDATE_SNAPSHOT=1 cargo nextest run -E 'test(the_shipped_file_is_the_rendered_one)'"
        );
    }

    #[test]
    fn every_line_uncommented_is_a_valid_file() {
        // Uncommenting every key with a default keeps the file valid; the file as
        // shipped is valid too.
        let shipped = super::render(super::DEBIAN);
        assert!(ConfFile::parse(&shipped).problems.is_empty());
        let all: String = shipped
            .lines()
            .filter(|l| l.starts_with('#') && !l.starts_with("# ") && l.contains(" = "))
            .map(|l| format!("{}\n", &l[1..]))
            .collect();
        let parsed = ConfFile::parse(&all);
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        assert!(parsed.values.len() > 20, "{all}");
        assert!(shipped.contains("data_dir = \"/var/lib/ods\"\n"));
        assert!(shipped.contains("# (environment DATABASE_URL, flag --database-url)\n"));
    }
}
