//! The notes of the controller's Events. The Event API refuses a note over 1024 characters
//! ("can have at most 1024 characters") and the Event is lost, so a long note is summarised to
//! fit: the phase first, then as many conditions as fit, then how many were left out.

use crate::api::{Condition, ConditionStatus, ConditionType, Phase};

/// The longest note the Event API accepts. It counts bytes, so this is also a bound in
/// characters.
pub const MAX_NOTE_BYTES: usize = 1024;

const ELLIPSIS: &str = "…";

/// A part is cut to fit only when at least this much of it is kept; else it is counted in
/// `… and N more`.
pub const MIN_CUT_BYTES: usize = 40;

/// The note of a phase change: `The scan is <phase>: <condition>; <condition>…`, with the
/// running `Scanning` condition, `Succeeded` and `PolicySucceeded` (not `SendingResults`),
/// each with its error. Never over [`MAX_NOTE_BYTES`].
pub fn phase_note(phase: Phase, conditions: &[Condition]) -> String {
    let parts: Vec<String> = conditions
        .iter()
        .filter(|c| match c.type_ {
            ConditionType::Scanning => c.status == ConditionStatus::True,
            ConditionType::SendingResults => false,
            _ => true,
        })
        .map(|c| match &c.error {
            Some(e) => format!("{}: {} ({e})", c.type_, c.message),
            None => format!("{}: {}", c.type_, c.message),
        })
        .collect();
    if parts.is_empty() {
        return format!("The scan is {phase}");
    }
    summarise(
        &format!("The scan is {phase}: "),
        &parts,
        "; ",
        MAX_NOTE_BYTES,
    )
}

/// `head` then `parts` joined by `separator`, within `max` bytes: whole parts while they fit;
/// the first part that does not fit is cut (at a character boundary, ending with `…`) when at
/// least [`MIN_CUT_BYTES`] of it fit, else left out; then `… and N more` for the parts left
/// out. `head` is kept whole when it fits.
pub fn summarise(head: &str, parts: &[String], separator: &str, max: usize) -> String {
    let whole = format!("{head}{}", parts.join(separator));
    if whole.len() <= max {
        return whole;
    }
    let more = |n: usize| {
        if n == 0 {
            String::new()
        } else {
            format!("{separator}{ELLIPSIS} and {n} more")
        }
    };
    let mut note = head.to_string();
    for (i, part) in parts.iter().enumerate() {
        let sep = if i == 0 { "" } else { separator };
        let after = more(parts.len() - i - 1);
        if note.len() + sep.len() + part.len() + after.len() <= max {
            note.push_str(sep);
            note.push_str(part);
            continue;
        }
        let room = max.saturating_sub(note.len() + sep.len() + ELLIPSIS.len() + after.len());
        if room >= MIN_CUT_BYTES {
            note.push_str(sep);
            note.push_str(cut(part, room));
            note.push_str(ELLIPSIS);
            note.push_str(&after);
        } else {
            let left_out = more(parts.len() - i);
            let sep = if i == 0 { "" } else { separator };
            let left_out = left_out.strip_prefix(separator).unwrap_or(&left_out);
            note.push_str(sep);
            note.push_str(left_out);
        }
        break;
    }
    if note.len() > max {
        // Only a head longer than `max` gets here.
        let kept = cut(&note, max.saturating_sub(ELLIPSIS.len())).to_string();
        note = format!("{kept}{ELLIPSIS}");
    }
    note
}

/// The longest prefix of `text` of at most `max` bytes that ends at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_notes_are_unchanged() {
        let note = phase_note(
            Phase::Failed,
            &[
                Condition::job_finished(),
                Condition::succeeded("Complete"),
                Condition::results_sent(),
                Condition::policy_violated(2),
            ],
        );
        assert_eq!(
            note,
            "The scan is Failed: Succeeded: Complete; PolicySucceeded: Policy violated because of 2 CVEs"
        );
        assert_eq!(phase_note(Phase::Pending, &[]), "The scan is Pending");
    }

    #[test]
    fn a_five_kilobyte_note_is_summarised_to_fit() {
        // A policy whose error lists every CVE: 5 KB in one condition.
        let long = format!("deny: {}", "CVE-2024-0001 (critical) ".repeat(200));
        assert!(long.len() > 5000);
        let note = phase_note(
            Phase::Error,
            &[
                Condition::job_finished(),
                Condition::succeeded("Complete"),
                Condition::policy_error(long.clone()),
            ],
        );
        assert!(note.len() <= MAX_NOTE_BYTES, "{}", note.len());
        assert!(
            note.starts_with("The scan is Error: Succeeded: Complete; PolicySucceeded: An error has occurred (deny: CVE-2024-0001"),
            "{note}"
        );
        assert!(note.ends_with(ELLIPSIS), "{note}");

        // Many conditions' worth: whole parts, then how many were left out.
        let parts: Vec<String> = (0..50)
            .map(|i| format!("violation {i}: {}", "x".repeat(90)))
            .collect();
        let summary = summarise("The scan is Failed: ", &parts, "; ", MAX_NOTE_BYTES);
        assert!(summary.len() <= MAX_NOTE_BYTES, "{}", summary.len());
        assert!(summary.starts_with("The scan is Failed: violation 0: "));
        let listed = summary.matches("violation ").count();
        assert!(listed >= 5, "{summary}");
        assert!(
            summary.ends_with(&format!("; … and {} more", 50 - listed)),
            "{summary}"
        );
    }

    #[test]
    fn a_long_first_part_is_cut_at_a_character_boundary() {
        let parts = vec!["é".repeat(2000), "short".into()];
        let summary = summarise("Head: ", &parts, "; ", 100);
        assert!(summary.len() <= 100, "{}", summary.len());
        assert!(summary.starts_with("Head: é"));
        assert!(summary.ends_with("…; … and 1 more"), "{summary}");
        let head_only = summarise(&"h".repeat(200), &["p".into()], "; ", 50);
        assert!(head_only.len() <= 50);
    }
}
