//! What a reader of an HTML page never sees: its `<script>` and `<style>`
//! elements and its comments, taken out before the error-page rules read
//! the page (a script that quotes "something went wrong" does not make the
//! page an error page).
//!
//! This does what the regular expression
//! `(?is)<script\b.*?</script\s*>|<style\b.*?</style\s*>|<!--.*?-->`,
//! each match replaced by one space, did, in one pass that looks only at
//! each `<`: under half the instructions. Tag names are compared as
//! HTML compares them, ignoring ASCII case only (the regular expression also
//! took `ſ`, U+017F, for `s`).

use std::borrow::Cow;

use memchr::memchr;

/// `html` without its scripts, style sheets and comments, each replaced by
/// one space; borrowed when there is none.
///
/// Linear in the page, whatever it holds: once no closing `</script`,
/// `</style` or `-->` is found after an opening one, none is looked for
/// again after a later one (a page of 250 KB repeating `<script ` would
/// otherwise be read to its end from each of them).
pub(crate) fn strip(html: &str) -> Cow<'_, str> {
    let b = html.as_bytes();
    let mut out = String::new();
    let mut none_left = NoneLeft::default();
    // `html[kept..]` is not yet copied; the next `<` is looked for from `at`.
    let (mut kept, mut at) = (0, 0);
    while let Some(k) = memchr(b'<', &b[at..]) {
        let open = at + k;
        match hidden_end(html, open, &mut none_left) {
            Some(end) => {
                out.push_str(&html[kept..open]);
                out.push(' ');
                kept = end;
                at = end;
            }
            None => at = open + 1,
        }
    }
    if kept == 0 {
        return Cow::Borrowed(html);
    }
    out.push_str(&html[kept..]);
    Cow::Owned(out)
}

/// The closings known to be absent from the rest of the page: searched
/// for once after an opening and not found, they are not after any later
/// opening either.
#[derive(Default)]
struct NoneLeft {
    comment: bool,
    script: bool,
    style: bool,
}

/// Where the hidden element or comment that starts with the `<` at `open`
/// ends (just past its closing `>`), if one starts there and is closed.
fn hidden_end(html: &str, open: usize, none_left: &mut NoneLeft) -> Option<usize> {
    let b = html.as_bytes();
    let rest = &b[open + 1..];
    // Most tags are told apart by their first letter.
    let (end, gone) = match rest.first()? {
        b'!' if rest.starts_with(b"!--") && !none_left.comment => {
            (find(b, open + 4, b"-->").map(|at| at + 3), &mut none_left.comment)
        }
        b's' | b'S' => {
            let script = rest.get(1).is_some_and(|c| c.eq_ignore_ascii_case(&b'c'));
            let (name, gone): (&[u8], _) =
                if script { (b"script", &mut none_left.script) } else { (b"style", &mut none_left.style) };
            let after = open + 1 + name.len();
            if *gone || !starts_with_ignore_case(rest, name) || word_char_at(html, after) {
                return None;
            }
            (closing_tag(html, after, name), gone)
        }
        _ => return None,
    };
    *gone |= end.is_none();
    end
}

/// The end of the first `</NAME` (ASCII case ignored), white space, `>` at
/// or after `from`.
fn closing_tag(html: &str, from: usize, name: &[u8]) -> Option<usize> {
    let b = html.as_bytes();
    let mut at = from;
    while let Some(k) = memchr(b'<', &b[at..]) {
        let lt = at + k;
        let rest = &b[lt + 1..];
        if rest.first() == Some(&b'/') && starts_with_ignore_case(&rest[1..], name) {
            let mut i = lt + 2 + name.len();
            // White space as `\s` means it: Unicode's White_Space.
            while let Some(c) = char_at(html, i).filter(|c| c.is_whitespace()) {
                i += c.len_utf8();
            }
            if b.get(i) == Some(&b'>') {
                return Some(i + 1);
            }
        }
        at = lt + 1;
    }
    None
}

fn starts_with_ignore_case(hay: &[u8], name: &[u8]) -> bool {
    hay.len() >= name.len() && hay[..name.len()].eq_ignore_ascii_case(name)
}

/// The start of the first `needle` at or after `from`.
fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(&b[from..], needle).map(|k| from + k)
}

/// The character that starts at byte `i` (always just after ASCII here,
/// so on a character's boundary), if any.
fn char_at(html: &str, i: usize) -> Option<char> {
    html.get(i..)?.chars().next()
}

/// Whether the character at byte `i` is a word character as `\b` sees it
/// (Unicode's `\w`); the end of the text is not. (The error is for a
/// build without regex-syntax's `unicode-perl`, which this crate turns on.)
fn word_char_at(html: &str, i: usize) -> bool {
    char_at(html, i).is_some_and(|c| regex_syntax::try_is_word_character(c).unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use regex::Regex;

    use super::strip;

    /// The regular expression this module replaces: the reference.
    fn reference() -> Regex {
        Regex::new(r"(?is)<script\b.*?</script\s*>|<style\b.*?</style\s*>|<!--.*?-->").unwrap()
    }

    #[test]
    fn scripts_styles_and_comments_go_and_the_rest_stays() {
        let cases = [
            ("<p>a</p>", "<p>a</p>"),
            ("x<script>alert('something went wrong')</script>y", "x y"),
            ("x<SCRIPT type=\"module\">a</Script >y<style>p{}</STYLE\n\t>z", "x y z"),
            ("a<!-- hidden -->b<!---->c<!-->d-->e", "a b c e"),
            // `<scripts>` is another element; `<script/>` and `<script\n` open one.
            ("<scripts>x</script><script/>y</script>z", "<scripts>x</script> z"),
            ("<script\nsrc=a>x</script>!", " !"),
            // Unclosed: nothing is taken out from there, but later ones are.
            ("<script>never closed <!-- c -->end", "<script>never closed  end"),
            ("<style>a</style b>c</style>d", " d"),
            ("<script>a</scriptx></script>b", " b"),
            // Non-ASCII after the name is a word character, or not.
            ("<scriptä>x</script>y", "<scriptä>x</script>y"),
            ("<script\u{a0}>x</script\u{2003}>y", " y"),
            ("é<!--ü-->ß", "é ß"),
            // HTML tag names ignore ASCII case only.
            ("<ſcript>x</script>", "<ſcript>x</script>"),
            ("", ""),
            ("<", "<"),
            ("<!--", "<!--"),
            ("<script", "<script"),
        ];
        for (html, want) in cases {
            assert_eq!(strip(html), want, "{html:?}");
        }
    }

    /// Pages that open what they never close agree with the regular
    /// expression too (they once made the scan read the page again from
    /// every opening: seconds a page).
    #[test]
    fn unclosed_openings_are_left_as_they_are() {
        let re = reference();
        for unit in ["<script ", "<!-- ", "<style>", "<script></scrip", "<STYLE></style x>", "<!-- -- >"] {
            let page = format!("a{}<!-- c -->b<script>x</script>", unit.repeat(2000));
            assert_eq!(strip(&page), re.replace_all(&page, " "), "{unit:?}");
            let page = format!("<p>{}</p>", unit.repeat(2000));
            assert_eq!(strip(&page), page, "{unit:?}");
        }
    }

    /// Pages made of pieces that meet at every awkward place agree with
    /// the regular expression, character for character.
    #[test]
    fn agrees_with_the_regular_expression_on_generated_pages() {
        let pieces = [
            "<",
            ">",
            "/",
            "!",
            "-",
            "--",
            "<!--",
            "-->",
            "<!-->",
            "<script",
            "<SCRIPT",
            "<Script",
            "</script",
            "</SCRIPT",
            "<style",
            "</style",
            "</StYlE",
            "s",
            "script",
            "style",
            " ",
            "\n",
            "\t",
            "\u{a0}",
            "\u{2003}",
            "a",
            "é",
            "ä",
            "_",
            "1",
            "<p>",
            "</p>",
            "x>",
            "<scripts>",
            "</scripts>",
        ];
        let re = reference();
        // A small linear congruential generator: the same pages every run.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize
        };
        let mut stripped = 0;
        for _ in 0..20_000 {
            let len = next() % 24;
            let page: String = (0..len).map(|_| pieces[next() % pieces.len()]).collect();
            let want = re.replace_all(&page, " ");
            assert_eq!(strip(&page), want, "{page:?}");
            stripped += usize::from(want != page);
        }
        // The pages did exercise the stripping.
        assert!(stripped > 2_000, "{stripped}");
    }
}
