//! HellaSwag (Zellers et al., ACL 2019): a scene description and four
//! endings, one of them the real continuation.
//!
//! Each sample shows the endings as options A to D in an order drawn from
//! the prompt seed. The canonical answer is the index of the chosen ending
//! in the dataset row, so answers of differently shuffled samples compare
//! equal. The gold ending has correctness 1 and the others 0; a run that
//! names a scorer replaces that 0 with the plausibility of the wrong
//! ending, which [`Task::statements`] states as the ending given the
//! context.

use serde::{Deserialize, Serialize};
use wow_sdk::{Grade, ItemError, Message, Question, Task, TaskInfo, choice, statement};

/// Endings per item in every official split.
pub const ENDINGS: usize = 4;

/// The `hellaswag` task.
pub struct HellaSwag;

/// Grading data, stored as the question payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    pub activity: String,
    pub context: String,
    pub endings: Vec<String>,
    /// Index of the real continuation in `endings`.
    pub label: usize,
}

impl Payload {
    /// Returns ending `index` as a statement given the context, so that a
    /// scorer judges the ending in its scene.
    fn statement(&self, index: usize) -> String {
        statement::conditional(&self.context, &self.endings[index])
    }
}

/// One line of the official JSONL files. The test split has an empty
/// string as its label, so the label is read as either form.
#[derive(Deserialize)]
struct Row {
    ind: u64,
    activity_label: String,
    ctx: String,
    endings: Vec<String>,
    label: Label,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Label {
    Index(u64),
    Text(String),
}

impl Task for HellaSwag {
    fn describe() -> TaskInfo {
        TaskInfo {
            name: "hellaswag".into(),
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

    fn extract(_question: Question, seed: u64, response: String) -> Option<String> {
        extract(seed, &response)
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
            Ok(index) => vec![payload.statement(index)],
            Err(_) => Vec::new(),
        }
    }
}

wow_sdk::export_task!(HellaSwag);

/// Parses an official HellaSwag JSONL file, one item a line. Blank lines
/// are skipped; a malformed line becomes an item error naming its line
/// number.
pub fn load(dataset: &[u8]) -> Result<Vec<Result<Question, ItemError>>, String> {
    let text = std::str::from_utf8(dataset).map_err(|e| format!("invalid HellaSwag file: not UTF-8: {e}"))?;
    let rows = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let number = i + 1;
            load_line(line).map_err(|message| ItemError {
                id: line_id(line).unwrap_or_else(|| format!("line {number}")),
                message: format!("line {number}: {message}"),
            })
        })
        .collect();
    Ok(rows)
}

fn load_line(line: &str) -> Result<Question, String> {
    let row: Row = serde_json::from_str(line).map_err(|e| format!("invalid HellaSwag row: {e}"))?;
    if row.endings.len() != ENDINGS {
        return Err(format!("expected {ENDINGS} endings, found {}", row.endings.len()));
    }
    if row.ctx.trim().is_empty() {
        return Err("the context `ctx` is empty".into());
    }
    if let Some(i) = row.endings.iter().position(|e| e.trim().is_empty()) {
        return Err(format!("ending {i} is empty"));
    }
    let label = match row.label {
        Label::Index(index) => index,
        Label::Text(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("label {text:?} is not an ending index; rows without labels cannot be graded"))?,
    };
    if label >= ENDINGS as u64 {
        return Err(format!("label {label} is not an ending index below {ENDINGS}"));
    }

    let payload = Payload {
        activity: row.activity_label,
        context: row.ctx,
        endings: row.endings,
        label: label as usize,
    };
    Ok(Question {
        id: row.ind.to_string(),
        text: payload.context.clone(),
        reference: Some(statement::plain(&payload.statement(payload.label))),
        payload: serde_json::to_string(&payload).expect("payload serialises"),
    })
}

/// Reads `ind` from a line that fails validation, so its error carries the
/// dataset's id.
fn line_id(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    value.get("ind")?.as_u64().map(|ind| ind.to_string())
}

/// Returns the dataset index of the ending shown as option `i`, for each
/// `i`: a permutation of `0..ENDINGS` drawn from `seed`.
pub fn option_order(seed: u64) -> [usize; ENDINGS] {
    let mut order = [0, 1, 2, 3];
    wow_sdk::shuffle(&mut order, seed);
    order
}

/// Builds the zero-shot prompt: the context, the shuffled endings as
/// lettered options and the requested answer format.
pub fn prompt(payload: &Payload, seed: u64) -> Vec<Message> {
    let options: Vec<&str> = option_order(seed).iter().map(|&i| payload.endings[i].trim()).collect();
    let content = format!(
        "Which ending continues the text best?\n\n{}: {}...\n\n{}\n\nEnd your answer with \"Answer: X\", where X is A, B, C or D.",
        payload.activity,
        payload.context.trim_end(),
        choice::option_lines(&options),
    );
    vec![Message::user(&content)]
}

/// Reads the final option letter and maps it back through the sample's
/// shuffle to the dataset index of the ending.
pub fn extract(seed: u64, response: &str) -> Option<String> {
    let option = choice::option_index(response, ENDINGS)?;
    Some(option_order(seed)[option].to_string())
}

fn read_payload(question: &Question) -> Result<Payload, String> {
    serde_json::from_str(&question.payload).map_err(|e| format!("question {}: invalid payload: {e}", question.id))
}

fn parse_answer(payload: &Payload, answer: &str) -> Result<usize, String> {
    answer
        .trim()
        .parse()
        .ok()
        .filter(|&index: &usize| index < payload.endings.len())
        .ok_or_else(|| {
            format!(
                "answer {answer:?} is not an ending index below {}",
                payload.endings.len()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROW: &str = r#"{"ind": 4, "activity_label": "Roof shingle removal", "ctx": "A man is sitting on a roof. he", "endings": ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.", "is holding a rubik's cube.", "starts pulling up roofing on a roof."], "label": 3, "split": "val"}"#;

    fn question() -> Question {
        load(ROW.as_bytes()).unwrap().remove(0).unwrap()
    }

    #[test]
    fn row_loads_with_gold_statement() {
        let question = question();
        assert_eq!(question.id, "4");
        assert_eq!(question.text, "A man is sitting on a roof. he");
        assert_eq!(
            question.reference.as_deref(),
            Some("A man is sitting on a roof. he starts pulling up roofing on a roof.")
        );
    }

    #[test]
    fn malformed_lines_name_their_number() {
        let five_endings = ROW.replace(r#""label": 3"#, r#""label": 7"#);
        let file = format!("{ROW}\n\nnot json\n{five_endings}\n");
        let rows = load(file.as_bytes()).unwrap();
        assert_eq!(rows.len(), 3);
        assert!(rows[0].is_ok());

        let broken = rows[1].as_ref().unwrap_err();
        assert_eq!(broken.id, "line 3");
        assert!(broken.message.starts_with("line 3: "), "{}", broken.message);

        let bad_label = rows[2].as_ref().unwrap_err();
        assert_eq!(bad_label.id, "4");
        assert!(bad_label.message.contains("label 7"), "{}", bad_label.message);
    }

    #[test]
    fn unlabelled_test_rows_are_errors() {
        let row = ROW.replace(r#""label": 3"#, r#""label": """#);
        let error = load(row.as_bytes()).unwrap().remove(0).unwrap_err();
        assert!(error.message.contains("without labels"), "{}", error.message);
    }

    #[test]
    fn order_is_a_seeded_permutation() {
        let order = option_order(11);
        assert_eq!(order, option_order(11));
        let mut sorted = order;
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2, 3]);
        let distinct: std::collections::BTreeSet<_> = (0..20).map(option_order).collect();
        assert!(distinct.len() > 5, "{distinct:?}");
    }

    #[test]
    fn prompt_lists_endings_in_seed_order() {
        let payload = read_payload(&question()).unwrap();
        let seed = 5;
        let content = &prompt(&payload, seed)[0].content;
        for (i, &index) in option_order(seed).iter().enumerate() {
            let line = format!("{}. {}", choice::letter(i), payload.endings[index]);
            assert!(content.contains(&line), "{line:?} missing from {content}");
        }
    }

    #[test]
    fn extraction_maps_letters_back() {
        let seed = 9;
        let order = option_order(seed);
        for (i, letter) in ['A', 'B', 'C', 'D'].into_iter().enumerate() {
            let answer = extract(seed, &format!("The roof. Answer: {letter}"));
            assert_eq!(answer, Some(order[i].to_string()));
        }
        assert_eq!(extract(seed, "A man keeps working."), None);
    }

    #[test]
    fn only_gold_ending_is_correct() {
        let question = question();
        for index in 0..ENDINGS {
            let grade = HellaSwag::grade(question.clone(), index.to_string()).unwrap();
            assert_eq!(grade.correct, index == 3);
            assert_eq!(grade.correctness, if index == 3 { 1.0 } else { 0.0 });
        }
        assert!(HellaSwag::grade(question, "4".into()).is_err());
    }

    #[test]
    fn statements_give_context_before_ending() {
        let statements = HellaSwag::statements(question(), "1".into());
        assert_eq!(
            statements,
            ["A man is sitting on a roof. he\u{1f}is ripping level tiles off."]
        );
        assert!(HellaSwag::statements(question(), "x".into()).is_empty());
    }
}
