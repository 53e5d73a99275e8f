//! Durations as operators write them: `30s`, `10m`, `24h`, `7d`, `2w`, or sums such as `1d12h`.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;

/// A duration with the text it was written as, so a command line can carry it unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub duration: Duration,
    pub text: String,
}

impl Span {
    pub fn parse(text: &str) -> Result<Span, String> {
        let bad =
            || format!("{text:?} is not a duration: write e.g. 30s, 10m, 24h, 7d, 2w or 1d12h");
        let t = text.trim();
        if t.is_empty() {
            return Err(bad());
        }
        if t == "0" {
            return Ok(Span {
                duration: Duration::ZERO,
                text: t.to_string(),
            });
        }
        let mut secs: u64 = 0;
        let mut number = String::new();
        for c in t.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                'w' => 7 * 86_400,
                _ => return Err(bad()),
            };
            let n: u64 = number.parse().map_err(|_| bad())?;
            number.clear();
            secs = n
                .checked_mul(unit)
                .and_then(|v| secs.checked_add(v))
                .ok_or_else(bad)?;
        }
        if !number.is_empty() {
            return Err(bad());
        }
        Ok(Span {
            duration: Duration::from_secs(secs),
            text: t.to_string(),
        })
    }

    pub fn secs(&self) -> u64 {
        self.duration.as_secs()
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Span::parse(&text).map_err(de::Error::custom)
    }
}

/// `3h`, `2d 4h`: a short human form of a number of seconds.
pub fn human(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86_400 => format!("{}h", s / 3600),
        s => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        let s = |t: &str| Span::parse(t).map(|s| s.secs());
        assert_eq!(s("30s"), Ok(30));
        assert_eq!(s("10m"), Ok(600));
        assert_eq!(s("24h"), Ok(86_400));
        assert_eq!(s("1d12h"), Ok(129_600));
        assert_eq!(s("2w"), Ok(1_209_600));
        assert_eq!(s("0"), Ok(0));
        for bad in ["", "5", "h", "1x", "1.5h", "-1d"] {
            assert!(Span::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
