//! Bio Generation: the model writes about a topic, and FactScore (Min et
//! al., 2023) grades what it wrote.
//!
//! Rows are JSONL with `topic`, `prompt` and `passages`, the knowledge
//! source for that topic. Rows without `passages` take them from the
//! knowledge file the run gives as setting `knowledge` (`--task-file
//! knowledge=FILE`), a JSONL of `topic` and `passages` rows. The canonical answer is the response itself.
//! Grading asks the run's model, as judge, to split the response into
//! atomic facts, retrieves the passages most related to each fact with
//! BM25 and asks the judge whether they support it (calibrated against the
//! same question without passages); correctness is the supported share,
//! and a response is correct at 0.9 or more.

mod bm25;

use serde::{Deserialize, Serialize};
use wow_sdk::host::{self, Sampling};
use wow_sdk::{Grade, ItemError, Message, Question, Task, TaskInfo};

/// Supported share at which a response counts as correct.
pub const CORRECT_THRESHOLD: f64 = 0.9;

/// Passages retrieved per fact.
pub const PASSAGES_PER_FACT: usize = 3;

/// Most facts checked per response; the rest are ignored.
pub const MAX_FACTS: usize = 16;

/// Tokens the judge may write when listing facts.
const FACT_TOKENS: u32 = 256;

/// Phrases that mark a response as abstaining, matched in lowercase.
const ABSTAIN_PHRASES: [&str; 6] = [
    "i don't know",
    "i do not know",
    "i'm not sure",
    "i am not sure",
    "i cannot provide",
    "i can't provide",
];

/// The `bio-generation` task.
pub struct BioGeneration;

/// Grading data, stored as the question payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    pub topic: String,
    pub passages: Vec<String>,
}

#[derive(Deserialize)]
struct Row {
    topic: String,
    prompt: String,
    #[serde(default)]
    passages: Option<Vec<String>>,
}

/// One line of a knowledge file.
#[derive(Deserialize)]
struct KnowledgeRow {
    topic: String,
    passages: Vec<String>,
}

/// Passages by topic.
pub type Knowledge = std::collections::BTreeMap<String, Vec<String>>;

impl Task for BioGeneration {
    fn describe() -> TaskInfo {
        TaskInfo {
            name: "bio-generation".into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn load(dataset: Vec<u8>) -> Result<Vec<Result<Question, ItemError>>, String> {
        let knowledge = match host::setting("knowledge") {
            Some(text) => parse_knowledge(&text)?,
            None => Knowledge::new(),
        };
        load_with(&dataset, &knowledge)
    }

    fn prompt(question: Question, _seed: u64) -> Vec<Message> {
        vec![Message::user(&question.text)]
    }

    /// Returns the trimmed response, or `None` when it is empty or
    /// abstains, so abstentions are never graded as wrong.
    // TODO: the response record has no abstention flag; an abstention is
    // stored as a response without an answer and logged here.
    fn extract(question: Question, _seed: u64, response: String) -> Option<String> {
        let response = response.trim();
        if response.is_empty() {
            return None;
        }
        if abstains(response) {
            wow_sdk::info!("question {}: the response abstains", question.id);
            return None;
        }
        Some(response.to_owned())
    }

    fn grade(question: Question, answer: String) -> Result<Grade, String> {
        let payload: Payload = serde_json::from_str(&question.payload)
            .map_err(|e| format!("question {}: invalid payload: {e}", question.id))?;
        let facts = atomic_facts(&payload.topic, &answer)?;
        let mut supported = 0;
        for fact in &facts {
            if is_supported(&payload, fact)? {
                supported += 1;
            }
        }
        let correctness = supported as f64 / facts.len() as f64;
        wow_sdk::debug!(
            "question {}: {supported} of {} facts supported",
            question.id,
            facts.len()
        );
        Ok(Grade {
            correctness,
            correct: correctness >= CORRECT_THRESHOLD,
        })
    }

    /// FactScore grades partly right responses itself.
    fn statements(_question: Question, _answer: String) -> Vec<String> {
        Vec::new()
    }
}

wow_sdk::export_task!(BioGeneration);

/// Parses a JSONL file of `topic`, `prompt`, `passages` rows; the topic is
/// the question id. A malformed line becomes an item error naming its line.
pub fn load(dataset: &[u8]) -> Result<Vec<Result<Question, ItemError>>, String> {
    load_with(dataset, &Knowledge::new())
}

/// Parses a knowledge file: JSONL rows of `topic` and `passages`. A topic
/// listed twice keeps the passages of both lines.
pub fn parse_knowledge(text: &str) -> Result<Knowledge, String> {
    let mut knowledge = Knowledge::new();
    for (i, line) in text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
        let row: KnowledgeRow = serde_json::from_str(line).map_err(|e| {
            format!(
                "invalid knowledge file: line {}: {e}; expected {{\"topic\": ..., \"passages\": [...]}}",
                i + 1
            )
        })?;
        knowledge.entry(row.topic).or_default().extend(row.passages);
    }
    Ok(knowledge)
}

/// Parses a prompts file like [`load`], taking the passages of rows that
/// have none from `knowledge`.
pub fn load_with(dataset: &[u8], knowledge: &Knowledge) -> Result<Vec<Result<Question, ItemError>>, String> {
    let text = std::str::from_utf8(dataset).map_err(|e| format!("invalid Bio Generation file: not UTF-8: {e}"))?;
    let rows = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let number = i + 1;
            parse_line(line, knowledge).map_err(|message| ItemError {
                id: format!("line {number}"),
                message: format!("line {number}: {message}"),
            })
        })
        .collect();
    Ok(rows)
}

fn parse_line(line: &str, knowledge: &Knowledge) -> Result<Question, String> {
    let row: Row = serde_json::from_str(line).map_err(|e| format!("invalid Bio Generation row: {e}"))?;
    if row.topic.trim().is_empty() || row.prompt.trim().is_empty() {
        return Err("the topic and the prompt must not be empty".into());
    }
    let passages = match row.passages {
        Some(passages) => passages,
        None => knowledge.get(&row.topic).cloned().ok_or_else(|| {
            format!(
                "topic {:?} has no passages in the row or in the knowledge file; add them, or pass a knowledge file with --task-file knowledge=FILE",
                row.topic
            )
        })?,
    };
    if passages.iter().all(|p| p.trim().is_empty()) {
        return Err(format!("topic {:?} has no knowledge passages", row.topic));
    }
    let payload = Payload {
        topic: row.topic,
        passages,
    };
    Ok(Question {
        id: payload.topic.clone(),
        text: row.prompt,
        reference: None,
        payload: serde_json::to_string(&payload).expect("payload serialises"),
    })
}

/// Returns whether the response declines to answer.
pub fn abstains(response: &str) -> bool {
    let lower = response.to_lowercase();
    ABSTAIN_PHRASES.iter().any(|phrase| lower.contains(phrase))
}

/// Asks the judge for the atomic facts of `response`, one per line. When
/// the judge lists none, the response's sentences stand in for facts.
fn atomic_facts(topic: &str, response: &str) -> Result<Vec<String>, String> {
    let request = format!(
        "Break the following text about {topic} into independent atomic facts. \
         Write one short fact per line, each starting with \"- \".\n\nText: {response}"
    );
    let sampling = Sampling {
        temperature: 0.0,
        top_p: 1.0,
        max_tokens: FACT_TOKENS,
        n: 1,
        seed: 0,
    };
    let generations = host::generate(&[Message::user(&request)], sampling)?;
    let listed = generations.first().map(|g| fact_lines(&g.text)).unwrap_or_default();
    let mut facts = if listed.is_empty() { sentences(response) } else { listed };
    facts.truncate(MAX_FACTS);
    if facts.is_empty() {
        return Err("the response has no facts to check".into());
    }
    Ok(facts)
}

/// Lines that start with `-`, `*` or a number and a period, without the mark.
pub fn fact_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let fact = line
                .strip_prefix("- ")
                .or_else(|| line.strip_prefix("* "))
                .or_else(|| {
                    let digits = line.find(|c: char| !c.is_ascii_digit())?;
                    (digits > 0).then(|| line[digits..].strip_prefix(". "))?
                })?;
            let fact = fact.trim();
            (!fact.is_empty()).then(|| fact.to_owned())
        })
        .collect()
}

/// Splits text into sentences at `.`, `!` and `?` followed by a space or
/// the end.
pub fn sentences(text: &str) -> Vec<String> {
    let mut sentences = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for (i, &byte) in bytes.iter().enumerate() {
        let ends = matches!(byte, b'.' | b'!' | b'?') && bytes.get(i + 1).is_none_or(|b| b.is_ascii_whitespace());
        if ends {
            sentences.push(text[start..=i].trim().to_owned());
            start = i + 1;
        }
    }
    sentences.push(text[start..].trim().to_owned());
    sentences.retain(|s| s.chars().any(char::is_alphanumeric));
    sentences
}

/// Asks the judge whether the passages retrieved for `fact` support it.
/// A small judge leans to one reply whatever the context, so the verdict is
/// calibrated (Zhao et al., 2021): the fact counts as supported when the
/// passages raise the log-odds of "True" over "False" compared with the
/// same question asked without them.
fn is_supported(payload: &Payload, fact: &str) -> Result<bool, String> {
    let knowledge: Vec<&str> = bm25::top_k(&payload.passages, fact, PASSAGES_PER_FACT)
        .into_iter()
        .map(|i| payload.passages[i].as_str())
        .collect();
    let with_knowledge = true_log_odds(&payload.topic, &knowledge.join("\n"), fact)?;
    let without_knowledge = true_log_odds(&payload.topic, "", fact)?;
    Ok(with_knowledge > without_knowledge)
}

/// Returns log P("True") - log P("False") as the judge's reply.
fn true_log_odds(topic: &str, context: &str, fact: &str) -> Result<f64, String> {
    let request = format!(
        "Answer the question about {topic} based on the given context.\n\n{context}\n\nInput: {fact} True or False?\nOutput:"
    );
    let messages = [Message::user(&request)];
    let logprob = |reply: &str| -> Result<f64, String> {
        let logprobs = host::logprobs(&messages, reply)?;
        Ok(logprobs.iter().map(|&l| f64::from(l)).sum())
    };
    Ok(logprob("True")? - logprob("False")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROW: &str = r#"{"topic": "Peru", "prompt": "Tell me about the country Peru.", "passages": ["The capital of Peru is Lima.", "The currency code of Peru is PEN."]}"#;

    #[test]
    fn rows_load_with_topic_ids() {
        let file = format!(
            "{ROW}\n\n{{\"topic\": \"X\"}}\n{}\n",
            ROW.replace("The capital of Peru is Lima.", "")
                .replace("The currency code of Peru is PEN.", "")
        );
        let rows = load(file.as_bytes()).unwrap();
        assert_eq!(rows.len(), 3);
        let question = rows[0].as_ref().unwrap();
        assert_eq!(question.id, "Peru");
        assert_eq!(question.text, "Tell me about the country Peru.");
        let missing = rows[1].as_ref().unwrap_err();
        assert_eq!(missing.id, "line 3");
        assert!(missing.message.starts_with("line 3: invalid"), "{}", missing.message);
        let empty = rows[2].as_ref().unwrap_err();
        assert!(empty.message.contains("no knowledge passages"), "{}", empty.message);
    }

    #[test]
    fn knowledge_file_fills_missing_passages() {
        let knowledge = parse_knowledge(
            "{\"topic\": \"Peru\", \"passages\": [\"The capital of Peru is Lima.\"]}\n\n\
             {\"topic\": \"Peru\", \"passages\": [\"Peru is in South America.\"]}\n",
        )
        .unwrap();
        let prompts = "{\"topic\": \"Peru\", \"prompt\": \"Tell me about Peru.\"}\n\
                       {\"topic\": \"Chad\", \"prompt\": \"Tell me about Chad.\"}\n";

        let rows = load_with(prompts.as_bytes(), &knowledge).unwrap();
        let payload: Payload = serde_json::from_str(&rows[0].as_ref().unwrap().payload).unwrap();
        assert_eq!(
            payload.passages,
            ["The capital of Peru is Lima.", "Peru is in South America."]
        );
        let missing = rows[1].as_ref().unwrap_err();
        assert_eq!(missing.id, "line 2");
        assert!(
            missing.message.contains("topic \"Chad\" has no passages"),
            "{}",
            missing.message
        );
    }

    #[test]
    fn malformed_knowledge_names_its_line() {
        let error = parse_knowledge("{\"topic\": \"Peru\", \"passages\": []}\n{\"topic\": 3}\n").unwrap_err();
        assert!(error.contains("line 2"), "{error}");
    }

    #[test]
    fn abstentions_have_no_answer() {
        let question = load(ROW.as_bytes()).unwrap().remove(0).unwrap();
        let answer = BioGeneration::extract(question.clone(), 0, "I'm not sure about Peru.".into());
        assert_eq!(answer, None);
        let answer = BioGeneration::extract(question, 0, " Peru is in South America. ".into());
        assert_eq!(answer.as_deref(), Some("Peru is in South America."));
    }

    #[test]
    fn fact_lines_strip_list_marks() {
        let text = "Facts:\n- Lima is the capital.\n* Peru uses PEN.\n3. Peru is large.\n-not a fact\n";
        assert_eq!(
            fact_lines(text),
            ["Lima is the capital.", "Peru uses PEN.", "Peru is large."]
        );
    }

    #[test]
    fn sentences_split_at_end_marks() {
        let text = "Peru is in South America. Its capital is Lima! Population 3.5 million? Yes";
        assert_eq!(
            sentences(text),
            [
                "Peru is in South America.",
                "Its capital is Lima!",
                "Population 3.5 million?",
                "Yes"
            ]
        );
    }

    #[test]
    fn grading_needs_the_host() {
        let question = load(ROW.as_bytes()).unwrap().remove(0).unwrap();
        let error = BioGeneration::grade(question, "Peru is in South America.".into()).unwrap_err();
        assert!(error.contains("no wow host"), "{error}");
    }
}
