//! Hybrid logical clock: versions that order changes across servers even when their
//! clocks disagree a little. A version is `ms.counter.iss`, fixed width, so plain
//! string comparison orders them (the origin ISS breaks ties).

use std::sync::Mutex;

pub struct Hlc {
    iss: String,
    state: Mutex<(i64, u32)>,
}

impl Hlc {
    pub fn new(iss: &str) -> Hlc {
        Hlc {
            iss: iss.to_string(),
            state: Mutex::new((0, 0)),
        }
    }

    /// A version newer than every version this server has made or seen.
    pub fn now(&self) -> String {
        let wall = crate::model::now_millis();
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if wall > s.0 {
            *s = (wall, 0);
        } else {
            s.1 += 1;
        }
        format!("{:013}.{:06}.{}", s.0, s.1, self.iss)
    }

    /// Moves the clock past a version received from another server.
    pub fn observe(&self, version: &str) {
        let mut parts = version.splitn(3, '.');
        let (Some(ms), Some(c)) = (
            parts.next().and_then(|p| p.parse::<i64>().ok()),
            parts.next().and_then(|p| p.parse::<u32>().ok()),
        ) else {
            return;
        };
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if (ms, c) > *s {
            *s = (ms, c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_monotonic_and_ordered_as_strings() {
        let a = Hlc::new("aaaa");
        let v1 = a.now();
        let v2 = a.now();
        assert!(v2 > v1);
        let far = format!(
            "{:013}.{:06}.{}",
            crate::model::now_millis() + 60_000,
            7,
            "bbbb"
        );
        a.observe(&far);
        let v3 = a.now();
        assert!(v3 > far, "{v3} <= {far}");
    }
}
