//! COM2 (Fang et al., 2024): multiple-choice questions verbalised from
//! multi-hop logical queries over a commonsense knowledge graph.
//!
//! The task reads the official CSV columns `question`, `context`,
//! `options`, `label` and `type`, and keeps the two- and three-hop
//! intersection questions (`type` `2i` and `3i`), whose answer must meet
//! every condition of the question at once. Each sample shows the options
//! lettered in an order drawn from the prompt seed; the canonical answer is
//! the option's index in the row. The gold option has correctness 1; a run
//! that names a scorer grades a wrong option by the mean plausibility of
//! the statements "context option is condition", one per condition.

mod csv;

use serde::{Deserialize, Serialize};
use wow_sdk::{Grade, ItemError, Message, Question, Task, TaskInfo, choice};

/// Query types kept: two- and three-hop intersections.
pub const KEPT_TYPES: [&str; 2] = ["2i", "3i"];

/// Columns every file must have, in any order.
const COLUMNS: [&str; 5] = ["question", "context", "options", "label", "type"];

/// The `com2` task.
pub struct Com2;

/// Grading data, stored as the question payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    pub context: String,
    pub question: String,
    pub conditions: Vec<String>,
    pub options: Vec<String>,
    pub label: usize,
}

impl Payload {
    /// One statement per condition that option `index` asserts.
    pub fn statements(&self, index: usize) -> Vec<String> {
        let context = self.context.trim().trim_end_matches('.');
        let option = self.options[index].trim().trim_end_matches('.');
        self.conditions
            .iter()
            .map(|condition| format!("{context} {option} is {condition}."))
            .collect()
    }
}

impl Task for Com2 {
    fn describe() -> TaskInfo {
        TaskInfo {
            name: "com2".into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn load(dataset: Vec<u8>) -> Result<Vec<Result<Question, ItemError>>, String> {
        load(&dataset)
    }

    fn prompt(question: Question, seed: u64) -> Vec<Message> {
        match read_payload(&question) {
            Ok(payload) => prompt(&payload, seed),
            // `load` wrote the payload, so this is a host bug; a prompt
            // without options makes every response fail extraction.
            Err(message) => vec![Message::user(&message)],
        }
    }

    fn extract(question: Question, seed: u64, response: String) -> Option<String> {
        let payload = read_payload(&question).ok()?;
        let option = choice::option_index(&response, payload.options.len())?;
        Some(option_order(payload.options.len(), seed)[option].to_string())
    }

    fn grade(question: Question, answer: String) -> Result<Grade, String> {
        let payload = read_payload(&question)?;
        let index = parse_answer(&payload, &answer)?;
        let correct = index == payload.label;
        Ok(Grade {
            correctness: if correct { 1.0 } else { 0.0 },
            correct,
        })
    }

    fn statements(question: Question, answer: String) -> Vec<String> {
        let Ok(payload) = read_payload(&question) else {
            return Vec::new();
        };
        match parse_answer(&payload, &answer) {
            Ok(index) => payload.statements(index),
            Err(_) => Vec::new(),
        }
    }
}

wow_sdk::export_task!(Com2);

/// Parses an official COM2 CSV file. Rows of other query types are
/// skipped; a malformed row becomes an item error naming the line it
/// starts on. A question id is `line N`, as the files have no id column.
pub fn load(dataset: &[u8]) -> Result<Vec<Result<Question, ItemError>>, String> {
    let text = std::str::from_utf8(dataset).map_err(|e| format!("invalid COM2 file: not UTF-8: {e}"))?;
    let records = csv::parse(text).map_err(|e| format!("invalid COM2 file: {e}"))?;
    let Some((header, rows)) = records.split_first() else {
        return Err("invalid COM2 file: it is empty".into());
    };
    let columns = COLUMNS
        .iter()
        .map(|name| {
            header
                .fields
                .iter()
                .position(|field| field.trim() == *name)
                .ok_or_else(|| format!("invalid COM2 file: the header has no `{name}` column"))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut questions = Vec::new();
    for row in rows {
        let field = |i: usize| row.fields.get(columns[i]).map(|s| s.trim()).unwrap_or("");
        if !KEPT_TYPES.contains(&field(4)) {
            continue;
        }
        let id = format!("line {}", row.line);
        let fields = [field(0), field(1), field(2), field(3), field(4)];
        let question = parse_row(&id, fields).map_err(|message| ItemError {
            id: id.clone(),
            message: format!("line {}: {message}", row.line),
        });
        questions.push(question);
    }
    Ok(questions)
}

fn parse_row(id: &str, [question, context, options, label, kind]: [&str; 5]) -> Result<Question, String> {
    let options = parse_list(options)?;
    if options.len() < 2 || options.len() > 26 {
        return Err(format!("expected 2 to 26 options, found {}", options.len()));
    }
    let label = parse_label(label, options.len())?;
    let conditions = conditions(question);
    let expected = if kind == "2i" { 2 } else { 3 };
    if conditions.len() != expected {
        return Err(format!(
            "a {kind} question has {expected} conditions, but {question:?} splits into {}",
            conditions.len()
        ));
    }

    let payload = Payload {
        context: context.to_owned(),
        question: question.to_owned(),
        conditions,
        options,
        label,
    };
    Ok(Question {
        id: id.to_owned(),
        text: format!("{context}\n{question}"),
        reference: Some(payload.options[label].clone()),
        payload: serde_json::to_string(&payload).expect("payload serialises"),
    })
}

/// Splits a verbalised intersection question into its conditions: the
/// leading "What is" (or "What are", "Which is", "What") and the final
/// question mark go, and the rest splits at ", and ", " and " and ", ".
// NOTE: this reads the conditions from the question text; a condition that
// itself contains " and " splits in two and fails the count check above.
pub fn conditions(question: &str) -> Vec<String> {
    let mut rest = question.trim().trim_end_matches('?').trim();
    for prefix in ["what is ", "what are ", "which is ", "what "] {
        if rest.len() >= prefix.len() && rest[..prefix.len()].eq_ignore_ascii_case(prefix) {
            rest = &rest[prefix.len()..];
            break;
        }
    }
    rest.split(", and ")
        .flat_map(|part| part.split(" and "))
        .flat_map(|part| part.split(", "))
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Reads the `options` column: a JSON list of strings, or the same list
/// written by Python's `str` with single quotes.
fn parse_list(text: &str) -> Result<Vec<String>, String> {
    if let Ok(list) = serde_json::from_str::<Vec<String>>(text) {
        return Ok(list);
    }
    parse_python_list(text).ok_or_else(|| format!("options {text:?} is not a list of quoted strings"))
}

fn parse_python_list(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut items = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(quote) = chars.next() else {
            return Some(items);
        };
        if quote != '\'' && quote != '"' {
            return None;
        }
        let mut item = String::new();
        loop {
            match chars.next()? {
                '\\' => item.push(chars.next()?),
                c if c == quote => break,
                c => item.push(c),
            }
        }
        items.push(item);
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            Some(',') => {}
            None => return Some(items),
            Some(_) => return None,
        }
    }
}

/// Reads the `label` column: a 0-based option index or an option letter.
fn parse_label(text: &str, options: usize) -> Result<usize, String> {
    let index = match text.parse::<usize>() {
        Ok(index) => Some(index),
        Err(_) => {
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_uppercase() => Some(c as usize - 'A' as usize),
                _ => None,
            }
        }
    };
    index
        .filter(|&i| i < options)
        .ok_or_else(|| format!("label {text:?} is not an option index or letter for {options} options"))
}

/// Returns the row index of the option shown as letter `i`, for each `i`:
/// a permutation of `0..count` drawn from `seed`.
pub fn option_order(count: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..count).collect();
    wow_sdk::shuffle(&mut order, seed);
    order
}

/// Builds the zero-shot prompt: context, question, shuffled lettered
/// options and the requested answer format.
pub fn prompt(payload: &Payload, seed: u64) -> Vec<Message> {
    let count = payload.options.len();
    let options: Vec<&str> = option_order(count, seed)
        .iter()
        .map(|&i| payload.options[i].trim())
        .collect();
    let letters: Vec<String> = (0..count).map(|i| choice::letter(i).to_string()).collect();
    let content = format!(
        "{}\n{}\n\n{}\n\nEnd your answer with \"Answer: X\", where X is one of {}.",
        payload.context.trim(),
        payload.question.trim(),
        choice::option_lines(&options),
        letters.join(", "),
    );
    vec![Message::user(&content)]
}

fn read_payload(question: &Question) -> Result<Payload, String> {
    serde_json::from_str(&question.payload).map_err(|e| format!("question {}: invalid payload: {e}", question.id))
}

fn parse_answer(payload: &Payload, answer: &str) -> Result<usize, String> {
    answer
        .trim()
        .parse()
        .ok()
        .filter(|&index: &usize| index < payload.options.len())
        .ok_or_else(|| {
            format!(
                "answer {answer:?} is not an option index below {}",
                payload.options.len()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows in the official column layout: a 2i and a 3i question kept, a
    /// one-hop question skipped.
    const FILE: &str = "question,context,options,label,type\n\
\"What is a result of being tired and a reason to stay home?\",PersonX works all night,\"['PersonX sleeps late', 'PersonX runs a marathon', 'PersonX buys a car']\",0,2i\n\
What is a result of the rain and a reason to carry an umbrella and a cause of wet shoes?,The sky turns grey,\"[\"\"it rains\"\", \"\"it snows\"\", \"\"the sun shines\"\"]\",A,3i\n\
What happens next?,PersonX eats,\"['PersonX is full', 'PersonX is hungry']\",0,1p\n";

    fn questions() -> Vec<Question> {
        load(FILE.as_bytes()).unwrap().into_iter().map(Result::unwrap).collect()
    }

    #[test]
    fn intersection_rows_load() {
        let questions = questions();
        assert_eq!(questions.len(), 2);
        assert_eq!(questions[0].id, "line 2");
        assert_eq!(questions[0].reference.as_deref(), Some("PersonX sleeps late"));
        let payload = read_payload(&questions[1]).unwrap();
        assert_eq!(payload.options, ["it rains", "it snows", "the sun shines"]);
        assert_eq!(payload.label, 0);
        assert_eq!(
            payload.conditions,
            [
                "a result of the rain",
                "a reason to carry an umbrella",
                "a cause of wet shoes"
            ]
        );
    }

    #[test]
    fn statements_join_context_option_and_condition() {
        let payload = read_payload(&questions()[0]).unwrap();
        assert_eq!(
            payload.statements(1),
            [
                "PersonX works all night PersonX runs a marathon is a result of being tired.",
                "PersonX works all night PersonX runs a marathon is a reason to stay home.",
            ]
        );
        assert_eq!(Com2::statements(questions()[0].clone(), "1".into()).len(), 2);
    }

    #[test]
    fn malformed_rows_name_their_line() {
        let file = "question,context,options,label,type\n\
What is a and b?,ctx,\"['x', 'y']\",5,2i\n\
What is a and b?,ctx,not a list,0,2i\n\
What is a?,ctx,\"['x', 'y']\",0,2i\n";
        let rows = load(file.as_bytes()).unwrap();
        let messages: Vec<String> = rows.iter().map(|r| r.as_ref().unwrap_err().message.clone()).collect();
        assert!(messages[0].starts_with("line 2: label \"5\""), "{}", messages[0]);
        assert!(messages[1].starts_with("line 3: options"), "{}", messages[1]);
        assert!(
            messages[2].starts_with("line 4: a 2i question has 2 conditions"),
            "{}",
            messages[2]
        );
        assert!(load(b"question,context\n").is_err());
    }

    #[test]
    fn shuffle_is_seeded_and_extraction_maps_back() {
        let question = &questions()[0];
        let seed = 6;
        let order = option_order(3, seed);
        assert_eq!(order, option_order(3, seed));
        for (i, letter) in ['A', 'B', 'C'].into_iter().enumerate() {
            let answer = Com2::extract(question.clone(), seed, format!("Answer: {letter}"));
            assert_eq!(answer, Some(order[i].to_string()));
        }
        assert_eq!(Com2::extract(question.clone(), seed, "Answer: D".into()), None);
    }

    #[test]
    fn only_gold_option_is_correct() {
        let question = &questions()[0];
        assert!(Com2::grade(question.clone(), "0".into()).unwrap().correct);
        let wrong = Com2::grade(question.clone(), "2".into()).unwrap();
        assert!(!wrong.correct);
        assert_eq!(wrong.correctness, 0.0);
        assert!(Com2::grade(question.clone(), "3".into()).is_err());
    }

    #[test]
    fn python_lists_parse() {
        assert_eq!(parse_list(r#"['it\'s', "b, c"]"#).unwrap(), ["it's", "b, c"]);
        assert_eq!(parse_list("[]").unwrap(), Vec::<String>::new());
        assert!(parse_list("['open").is_err());
    }
}
