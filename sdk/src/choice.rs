//! Lettered multiple-choice options: labels, prompt lines and extraction of
//! the chosen letter from a free-form response.

/// Returns the label of option `index`: `A`, `B`, … up to `Z`.
///
/// # Panics
///
/// When `index` is 26 or more.
pub fn letter(index: usize) -> char {
    assert!(index < 26, "option index {index} has no letter; at most 26 options");
    char::from(b'A' + index as u8)
}

/// Formats options as lines `A. first`, `B. second`, ….
///
/// ```
/// assert_eq!(wow_sdk::choice::option_lines(&["yes", "no"]), "A. yes\nB. no");
/// ```
pub fn option_lines<S: AsRef<str>>(options: &[S]) -> String {
    options
        .iter()
        .enumerate()
        .map(|(i, option)| format!("{}. {}", letter(i), option.as_ref()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Returns the index of the option letter a response ends on, among
/// `count` options.
///
/// The letter after the last "answer" (as in `Answer: B`, `the answer is
/// (C)`, `answer is **D**`) wins. Without one, the last standalone option
/// letter counts, unless a lowercase word follows it, so the article in
/// "A man is …" is not read as option A.
///
/// ```
/// use wow_sdk::choice::option_index;
/// assert_eq!(option_index("A man runs. The answer is (C).", 4), Some(2));
/// assert_eq!(option_index("I pick B", 4), Some(1));
/// assert_eq!(option_index("A man runs.", 4), None);
/// assert_eq!(option_index("Answer: E", 4), None);
/// ```
pub fn option_index(text: &str, count: usize) -> Option<usize> {
    let letters = standalone_letters(text, count);
    let lower = text.to_ascii_lowercase();
    let after_answer = lower
        .rmatch_indices("answer")
        .find_map(|(start, phrase)| letter_after(text, &letters, start + phrase.len()));
    after_answer.or_else(|| {
        letters
            .iter()
            .rev()
            .find(|found| !followed_by_word(text, found.end))
            .map(|found| found.index)
    })
}

/// One option letter with no letter or digit on either side.
struct Found {
    index: usize,
    start: usize,
    end: usize,
}

fn standalone_letters(text: &str, count: usize) -> Vec<Found> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut found = Vec::new();
    for (i, &(start, c)) in chars.iter().enumerate() {
        let index = (c as usize).wrapping_sub('A' as usize);
        if !c.is_ascii_uppercase() || index >= count {
            continue;
        }
        let before = i > 0 && chars[i - 1].1.is_alphanumeric();
        let after = chars.get(i + 1).is_some_and(|&(_, next)| next.is_alphanumeric());
        if !before && !after {
            found.push(Found {
                index,
                start,
                end: start + c.len_utf8(),
            });
        }
    }
    found
}

/// Returns the first letter at or after byte `from` when only spaces, punctuation
/// and the word "is" lie between.
fn letter_after(text: &str, letters: &[Found], from: usize) -> Option<usize> {
    let found = letters.iter().find(|found| found.start >= from)?;
    let gap = text[from..found.start].to_ascii_lowercase();
    let gap = gap.replace(" is ", " ").replace("is ", " ");
    (!gap.chars().any(char::is_alphanumeric)).then_some(found.index)
}

/// Returns whether a lowercase word follows byte `end` after spaces.
fn followed_by_word(text: &str, end: usize) -> bool {
    let rest = &text[end..];
    rest.starts_with(' ') && rest.trim_start().starts_with(|c: char| c.is_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_phrase_wins_over_later_letters() {
        assert_eq!(option_index("Answer: B. Option D is wrong", 4), Some(1));
        assert_eq!(option_index("the answer is **D**", 4), Some(3));
        assert_eq!(option_index("Final answer - c", 4), None);
    }

    #[test]
    fn last_answer_phrase_counts() {
        assert_eq!(option_index("Answer: A? No, the answer is C.", 4), Some(2));
    }

    #[test]
    fn bare_letters_fall_back_to_last() {
        assert_eq!(option_index("B", 4), Some(1));
        assert_eq!(option_index("Between A and D, D.", 4), Some(3));
        assert_eq!(option_index("(C)", 4), Some(2));
    }

    #[test]
    fn letters_inside_words_do_not_count() {
        assert_eq!(option_index("DNA and CAB", 4), None);
        assert_eq!(option_index("A dog and a cat", 4), None);
    }

    #[test]
    fn letters_beyond_count_do_not_count() {
        assert_eq!(option_index("E", 4), None);
        assert_eq!(option_index("E", 5), Some(4));
    }

    #[test]
    fn non_ascii_text_is_scanned() {
        assert_eq!(option_index("café – réponse B", 4), Some(1));
    }
}
