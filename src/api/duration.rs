//! Durations as users write them in specs and config: `24h`, `1h30m`, `90d`, `45s`.

use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("duration {input:?} is not valid: {problem}; write it like `24h`, `1h30m`, `90d` or `45s`")]
pub struct DurationError {
    input: String,
    problem: &'static str,
}

/// Parses a sequence of `<number><unit>` with units `d` (24 h), `h`, `m`, `s`, `ms`.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let error = |problem| DurationError {
        input: input.to_string(),
        problem,
    };
    let mut rest = input.trim();
    if rest.is_empty() {
        return Err(error("it is empty"));
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(error("a number must come before each unit"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| error("a number is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "d" => 86_400,
            "h" => 3_600,
            "m" => 60,
            "s" => 1,
            "ms" => 0,
            "" => return Err(error("a unit must follow each number")),
            _ => return Err(error("units are d, h, m, s and ms")),
        };
        let part = if seconds_per_unit == 0 {
            Duration::from_millis(number)
        } else {
            number
                .checked_mul(seconds_per_unit)
                .map(Duration::from_secs)
                .ok_or_else(|| error("it is too long"))?
        };
        total = total
            .checked_add(part)
            .ok_or_else(|| error("it is too long"))?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("1m500ms"), Ok(Duration::from_millis(60_500)));
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        for bad in [
            "",
            "24",
            "h",
            "1x",
            "1.5h",
            "-1h",
            "1h 30m",
            "99999999999999999999s",
            "18446744073709551615d",
        ] {
            let message = parse_duration(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(message.contains("is not valid"), "{bad:?}: {message}");
        }
    }
}
