//! Answer extraction from free-form model responses.
//!
//! A number is an optional sign (`-` or U+2212 `−`, only where no letter or
//! digit precedes it, so `1-2` reads as 1 and 2), decimal digits and an
//! optional fraction (`.` and digits). Commas are separators, never
//! thousands marks, because graph answers list paths as `1,4,2`.
//! Numbers come back in canonical form: no leading zeros, no trailing
//! fractional zeros, no `-0`, and any number of digits, so an answer longer
//! than `i64` survives as text.

/// Returns every number in `text`, in order, in canonical form.
///
/// ```
/// assert_eq!(wow_sdk::extract::numbers("0,4,2 weighs -07.50"), ["0", "4", "2", "-7.5"]);
/// ```
pub fn numbers(text: &str) -> Vec<String> {
    scan(text).into_iter().map(|token| token.canonical).collect()
}

/// Returns the last number in `text`.
pub fn last_number(text: &str) -> Option<String> {
    scan(text).pop().map(|token| token.canonical)
}

/// Returns the last integer in `text`, skipping numbers with a fraction.
///
/// ```
/// assert_eq!(wow_sdk::extract::last_integer("3 apples, 2.5 pears"), Some("3".into()));
/// assert_eq!(wow_sdk::extract::last_integer("no digits"), None);
/// ```
pub fn last_integer(text: &str) -> Option<String> {
    scan(text)
        .into_iter()
        .rev()
        .find(|token| !token.canonical.contains('.'))
        .map(|token| token.canonical)
}

/// Returns the number that follows the last occurrence of `phrase` (ASCII
/// case-insensitive) with only spaces and punctuation between them, such as
/// `is **12**` or `is: $12$`.
///
/// ```
/// use wow_sdk::extract::number_after;
/// let response = "The total weight is 9? No: the total weight is **7**.";
/// assert_eq!(number_after(response, "total weight is"), Some("7".into()));
/// assert_eq!(number_after("the total weight is unknown, 3", "total weight is"), None);
/// ```
pub fn number_after(text: &str, phrase: &str) -> Option<String> {
    number_after_any(text, &[phrase])
}

/// Like [`number_after`], for the last occurrence of any of `phrases`.
///
/// ```
/// use wow_sdk::extract::number_after_any;
/// let response = "The total weight is 9, so the path has a total weight of 8.";
/// let phrases = ["total weight is", "total weight of"];
/// assert_eq!(number_after_any(response, &phrases), Some("8".into()));
/// ```
pub fn number_after_any(text: &str, phrases: &[&str]) -> Option<String> {
    let haystack = text.to_ascii_lowercase();
    let mut ends: Vec<usize> = phrases
        .iter()
        .map(|phrase| phrase.to_ascii_lowercase())
        .flat_map(|needle| {
            let len = needle.len();
            haystack
                .match_indices(&needle)
                .map(move |(start, _)| start + len)
                .collect::<Vec<_>>()
        })
        .collect();
    ends.sort_unstable();
    let tokens = scan(text);
    ends.into_iter().rev().find_map(|end| number_at(text, &tokens, end))
}

/// Returns the first number starting at or after byte `from` when only
/// characters other than letters and digits lie between.
fn number_at(text: &str, tokens: &[Token], from: usize) -> Option<String> {
    let token = tokens.iter().find(|token| token.start >= from)?;
    let gap = &text[from..token.start];
    if gap.chars().any(char::is_alphanumeric) {
        return None;
    }
    Some(token.canonical.clone())
}

/// One number found in a text: its byte offset and canonical form.
struct Token {
    start: usize,
    canonical: String,
}

fn scan(text: &str) -> Vec<Token> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match read_number(&chars, i) {
            Some((token, next)) => {
                tokens.push(token);
                i = next;
            }
            None => i += 1,
        }
    }
    tokens
}

/// Reads a number starting at `chars[i]`, returning it and the index after it.
fn read_number(chars: &[(usize, char)], i: usize) -> Option<(Token, usize)> {
    let preceded_by_word = i > 0 && chars[i - 1].1.is_alphanumeric();
    let negative = matches!(chars[i].1, '-' | '\u{2212}') && !preceded_by_word;
    let digits_start = if negative { i + 1 } else { i };
    let integer_end = skip_digits(chars, digits_start);
    if integer_end == digits_start {
        return None;
    }
    let mut end = integer_end;
    let mut fraction = String::new();
    if chars.get(end).is_some_and(|&(_, c)| c == '.') {
        let fraction_end = skip_digits(chars, end + 1);
        if fraction_end > end + 1 {
            fraction = collect(&chars[end + 1..fraction_end]);
            end = fraction_end;
        }
    }
    let integer = collect(&chars[digits_start..integer_end]);
    let canonical = canonical_number(negative, &integer, &fraction);
    Some((
        Token {
            start: chars[i].0,
            canonical,
        },
        end,
    ))
}

fn skip_digits(chars: &[(usize, char)], mut i: usize) -> usize {
    while chars.get(i).is_some_and(|&(_, c)| c.is_ascii_digit()) {
        i += 1;
    }
    i
}

fn collect(chars: &[(usize, char)]) -> String {
    chars.iter().map(|&(_, c)| c).collect()
}

/// Joins sign, integer and fraction digits into canonical form.
fn canonical_number(negative: bool, integer: &str, fraction: &str) -> String {
    let integer = integer.trim_start_matches('0');
    let integer = if integer.is_empty() { "0" } else { integer };
    let fraction = fraction.trim_end_matches('0');
    let mut number = String::new();
    if negative && (integer != "0" || !fraction.is_empty()) {
        number.push('-');
    }
    number.push_str(integer);
    if !fraction.is_empty() {
        number.push('.');
        number.push_str(fraction);
    }
    number
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_canonical() {
        assert_eq!(numbers("007 -0 -0.0 3.140 1e5"), ["7", "0", "0", "3.14", "1", "5"]);
    }

    #[test]
    fn minus_after_word_is_a_hyphen() {
        assert_eq!(numbers("path 1-4-2"), ["1", "4", "2"]);
        assert_eq!(numbers("weight -5"), ["-5"]);
        assert_eq!(numbers("weight \u{2212}5"), ["-5"]);
        assert_eq!(numbers("(-5)"), ["-5"]);
    }

    #[test]
    fn sentence_period_is_not_a_fraction() {
        assert_eq!(last_number("The maximum flow is 18."), Some("18".into()));
    }

    #[test]
    fn huge_numbers_keep_every_digit() {
        let huge = "123456789012345678901234567890";
        assert_eq!(last_integer(&format!("it is {huge}!")), Some(huge.into()));
        assert_eq!(last_integer(&format!("it is -{huge}")), Some(format!("-{huge}")));
    }

    #[test]
    fn last_integer_skips_fractions() {
        assert_eq!(last_integer("1 then 2.5"), Some("1".into()));
        assert_eq!(last_integer("2.0"), Some("2".into()));
        assert_eq!(last_number("1 then 2.5"), Some("2.5".into()));
    }

    #[test]
    fn number_after_takes_last_phrase() {
        let text = "Total weight is 3, or rather the total weight is 4; total 9";
        assert_eq!(number_after(text, "total weight is"), Some("4".into()));
    }

    #[test]
    fn number_after_allows_markup() {
        assert_eq!(number_after("flow is: **-12**", "flow is"), Some("-12".into()));
        assert_eq!(number_after("flow is $12$.", "flow is"), Some("12".into()));
    }

    #[test]
    fn number_after_rejects_words_between() {
        assert_eq!(number_after("flow is about 12", "flow is"), None);
        assert_eq!(number_after("no phrase 12", "flow is"), None);
        assert_eq!(number_after("flow is", "flow is"), None);
    }

    #[test]
    fn number_after_falls_back_to_earlier_phrase() {
        let text = "flow is 5. Check: flow is unclear";
        assert_eq!(number_after(text, "flow is"), Some("5".into()));
    }

    #[test]
    fn non_ascii_text_is_scanned() {
        assert_eq!(numbers("größe 5 – café 6"), ["5", "6"]);
        assert_eq!(number_after("Größe IS 5", "größe is"), Some("5".into()));
    }
}
