//! A small PDF writer for the page's downloads: lines of text in Helvetica on A4 pages, as
//! PDF 1.4 with the standard font (nothing embedded), so any viewer and `pdftotext` read it.
//! Pure. Text outside printable ASCII is written as `?`.

use std::fmt::Write as _;

/// A line of the document: a heading or body text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    Heading(String),
    Text(String),
}

const PAGE_WIDTH: u32 = 595;
const PAGE_HEIGHT: u32 = 842;
const MARGIN: u32 = 50;
const TEXT_SIZE: u32 = 9;
const HEADING_SIZE: u32 = 12;
const LEADING: u32 = 12;
/// Characters of body text on a line (Helvetica 9 pt over the width between the margins).
const WRAP_AT: usize = 100;

/// The characters a PDF string literal can carry as they are: printable ASCII, with `\`, `(`
/// and `)` escaped; anything else becomes `?`.
fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '(' | ')' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out
}

/// Body text broken into lines of at most [`WRAP_AT`] characters, at spaces where it can.
fn wrap(text: &str) -> Vec<String> {
    let mut lines = vec![];
    let mut line = String::new();
    for word in text.split(' ') {
        let mut word = word.to_string();
        while word.chars().count() > WRAP_AT {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            let head: String = word.chars().take(WRAP_AT).collect();
            word = word.chars().skip(WRAP_AT).collect();
            lines.push(head);
        }
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > WRAP_AT {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    lines.push(line);
    lines
}

/// The document: `lines` laid out top to bottom, over as many pages as they need.
#[must_use]
pub fn document(title: &str, lines: &[Line]) -> Vec<u8> {
    let per_page = ((PAGE_HEIGHT - 2 * MARGIN) / LEADING) as usize;
    let laid: Vec<(u32, String)> = lines
        .iter()
        .flat_map(|line| match line {
            Line::Heading(text) => vec![(HEADING_SIZE, text.clone())],
            Line::Text(text) => wrap(text).into_iter().map(|l| (TEXT_SIZE, l)).collect(),
        })
        .collect();
    let pages: Vec<&[(u32, String)]> = if laid.is_empty() {
        vec![&[]]
    } else {
        laid.chunks(per_page).collect()
    };
    // Objects: 1 catalog, 2 pages, 3 font, 4 info, then a page and its content per page.
    let mut objects: Vec<String> = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".into(),
        String::new(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".into(),
        format!("<< /Title ({}) /Producer (scangate) >>", literal(title)),
    ];
    let mut kids = vec![];
    for page in &pages {
        let mut stream = String::from("BT\n");
        let mut y = PAGE_HEIGHT - MARGIN;
        for (size, text) in *page {
            let _ = writeln!(
                stream,
                "/F1 {size} Tf 1 0 0 1 {MARGIN} {y} Tm ({}) Tj",
                literal(text)
            );
            y = y.saturating_sub(LEADING);
        }
        stream.push_str("ET\n");
        let page_number = objects.len() + 1;
        kids.push(format!("{page_number} 0 R"));
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_WIDTH} {PAGE_HEIGHT}] \
             /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            page_number + 1
        ));
        objects.push(format!(
            "<< /Length {} >>\nstream\n{stream}endstream",
            stream.len()
        ));
    }
    objects[1] = format!(
        "<< /Type /Pages /Kids [{}] /Count {} >>",
        kids.join(" "),
        kids.len()
    );
    let mut out = String::from("%PDF-1.4\n");
    let mut offsets = vec![];
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        let _ = write!(out, "{} 0 obj\n{object}\nendobj\n", i + 1);
    }
    let xref = out.len();
    let _ = write!(out, "xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for offset in offsets {
        let _ = writeln!(out, "{offset:010} 00000 n ");
    }
    let _ = write!(
        out,
        "trailer\n<< /Size {} /Root 1 0 R /Info 4 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    );
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_kept_printable() {
        assert_eq!(literal("a (b) \\ c"), "a \\(b\\) \\\\ c");
        assert_eq!(literal("naïve\n"), "na?ve?");
    }

    #[test]
    fn long_text_is_wrapped_at_spaces_and_long_words_cut() {
        let words = "word ".repeat(40);
        let lines = wrap(words.trim());
        assert!(
            lines.iter().all(|l| l.chars().count() <= WRAP_AT),
            "{lines:?}"
        );
        assert_eq!(lines.join(" "), words.trim());
        let long = "x".repeat(250);
        let lines = wrap(&long);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines.concat(), long);
    }

    #[test]
    fn the_cross_reference_table_points_at_each_object() {
        let lines: Vec<Line> = (0..150).map(|i| Line::Text(format!("CVE-{i}"))).collect();
        let pdf = document("t", &lines);
        let text = String::from_utf8_lossy(&pdf).into_owned();
        assert!(text.starts_with("%PDF-1.4\n") && text.ends_with("%%EOF\n"));
        assert!(text.contains("/Count 3"), "150 lines on 3 pages");
        let xref = text
            .rsplit_once("startxref\n")
            .and_then(|(_, rest)| rest.lines().next())
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or_default();
        assert!(text[xref..].starts_with("xref\n"));
        let entries: Vec<usize> = text[xref..]
            .lines()
            .skip(3)
            .take_while(|l| l.ends_with(" n "))
            .filter_map(|l| l.split(' ').next()?.parse().ok())
            .collect();
        assert_eq!(entries.len(), 4 + 2 * 3);
        for (i, offset) in entries.iter().enumerate() {
            assert!(
                text[*offset..].starts_with(&format!("{} 0 obj", i + 1)),
                "object {}",
                i + 1
            );
        }
    }
}
