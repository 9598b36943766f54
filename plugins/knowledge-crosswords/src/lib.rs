//! Knowledge Crosswords (Ding et al., 2023): fill the blanks of a
//! knowledge-graph pattern so that every constraint holds.
//!
//! Each sample shows four lettered options that fill all three blanks,
//! with 0, 1, 2 and 3 of them right, in an order drawn from the prompt
//! seed. The canonical answer is the chosen entities as a JSON array in
//! blank order, so answers of differently drawn samples compare equal, and
//! its correctness is the share of blanks filled right.

pub mod problem;

use wow_sdk::{Grade, ItemError, Message, Question, SplitMix64, Task, TaskInfo, choice};

use problem::{BLANKS, Problem, constraint_text};

/// Options per sample: one for each count of right blanks, 0 to 3.
pub const OPTIONS: usize = BLANKS + 1;

/// The `knowledge-crosswords` task.
pub struct KnowledgeCrosswords;

impl Task for KnowledgeCrosswords {
    fn describe() -> TaskInfo {
        TaskInfo {
            name: "knowledge-crosswords".into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn load(dataset: Vec<u8>) -> Result<Vec<Result<Question, ItemError>>, String> {
        problem::load(&dataset)
    }

    fn prompt(question: Question, seed: u64) -> Vec<Message> {
        match read_problem(&question) {
            Ok(problem) => prompt(&problem, seed),
            // `load` wrote the payload, so this is a host bug; a prompt
            // without options makes every response fail extraction.
            Err(message) => vec![Message::user(&message)],
        }
    }

    fn extract(question: Question, seed: u64, response: String) -> Option<String> {
        let problem = read_problem(&question).ok()?;
        let option = choice::option_index(&response, OPTIONS)?;
        let filling = &options(&problem, seed)[option];
        Some(serde_json::to_string(filling).expect("entities serialise"))
    }

    fn grade(question: Question, answer: String) -> Result<Grade, String> {
        let problem = read_problem(&question)?;
        grade(&problem, &answer)
    }

    /// Partly right fillings are graded by their right blanks.
    fn statements(_question: Question, _answer: String) -> Vec<String> {
        Vec::new()
    }
}

wow_sdk::export_task!(KnowledgeCrosswords);

/// Draws the four options of the sample seeded with `seed`: for each count
/// of right blanks from 0 to 3, that many blanks chosen at random get their
/// answer and the others a random wrong candidate; then the options are
/// shuffled.
pub fn options(problem: &Problem, seed: u64) -> Vec<Vec<String>> {
    let mut rng = SplitMix64::new(seed);
    let mut fillings: Vec<Vec<String>> = (0..=BLANKS)
        .map(|right| {
            let mut blanks: Vec<usize> = (0..BLANKS).collect();
            wow_sdk::shuffle(&mut blanks, rng.next_u64());
            let right_blanks = &blanks[..right];
            (0..BLANKS)
                .map(|i| {
                    if right_blanks.contains(&i) {
                        problem.answer[i].clone()
                    } else {
                        let wrong = problem.wrong_options(i);
                        wrong[rng.below(wrong.len() as u64) as usize].to_owned()
                    }
                })
                .collect()
        })
        .collect();
    wow_sdk::shuffle(&mut fillings, rng.next_u64());
    fillings
}

/// Builds the prompt of the Knowledge Crosswords paper: instruction,
/// knowledge triples when the problem has them, constraints and options.
pub fn prompt(problem: &Problem, seed: u64) -> Vec<Message> {
    let mut content =
        String::from("Instruction: Pick the correct answer for each blank that satisfies all the given constraints.\n");
    if !problem.knowledge.is_empty() {
        content.push_str(&format!("Knowledge: {}\n", constraint_text(&problem.knowledge)));
    }
    content.push_str(&format!("Constraints: {}\n", constraint_text(&problem.constraints)));

    let lines: Vec<String> = options(problem, seed)
        .iter()
        .map(|filling| {
            problem
                .blanks
                .iter()
                .zip(filling)
                .map(|(blank, entity)| format!("{blank}: {entity}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    content.push_str(&format!(
        "Options:\n{}\n\nEnd your answer with \"Answer: X\", where X is A, B, C or D.",
        choice::option_lines(&lines)
    ));
    vec![Message::user(&content)]
}

/// Grades a filling, a JSON array of one entity per blank: correctness is
/// the share of blanks whose entity is the answer.
pub fn grade(problem: &Problem, answer: &str) -> Result<Grade, String> {
    let filling: Vec<String> =
        serde_json::from_str(answer).map_err(|e| format!("answer {answer:?} is not a JSON array of entities: {e}"))?;
    if filling.len() != BLANKS {
        return Err(format!(
            "answer {answer:?} fills {} blanks, not {BLANKS}",
            filling.len()
        ));
    }
    let right = filling.iter().zip(&problem.answer).filter(|(a, b)| a == b).count();
    Ok(Grade {
        correctness: right as f64 / BLANKS as f64,
        correct: right == BLANKS,
    })
}

fn read_problem(question: &Question) -> Result<Problem, String> {
    serde_json::from_str(&question.payload).map_err(|e| format!("question {}: invalid payload: {e}", question.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row in the official layout, with a distractor repeated.
    const ROW: &str = r#"{"id": "kc-7", "source": ["blank 2", "blank 3", "blank 1"], "relation": ["capital of", "shares border with", "located in"], "target": ["blank 1", "blank 1", "Western Europe"], "K": {"blank 1": [["France", "located in", "Western Europe"]], "blank 2": [["Paris", "capital of", "France"]]}, "options": {"blank 1": ["France", "Chile", "Peru", "Chile"], "blank 2": ["Paris", "Tokyo", "Nairobi"], "blank 3": ["Belgium", "Fiji", "Laos"]}, "answer_all": ["France", "Paris", "Belgium"], "blanks": ["blank 1", "blank 2", "blank 3"]}"#;

    fn problem() -> Problem {
        let question = problem::load(ROW.as_bytes()).unwrap().remove(0).unwrap();
        read_problem(&question).unwrap()
    }

    #[test]
    fn official_row_loads() {
        let question = problem::load(ROW.as_bytes()).unwrap().remove(0).unwrap();
        assert_eq!(question.id, "kc-7");
        assert_eq!(question.reference.as_deref(), Some("France, Paris, Belgium"));
        let problem = read_problem(&question).unwrap();
        assert_eq!(problem.constraints.len(), 3);
        assert_eq!(problem.knowledge.len(), 2);
        assert_eq!(problem.wrong_options(0), ["Chile", "Peru"]);
    }

    #[test]
    fn answer_missing_from_options_is_an_error() {
        let row = ROW.replace(r#"["Paris", "Tokyo""#, r#"["Lima", "Tokyo""#);
        let rows = problem::load(row.as_bytes()).unwrap();
        let error = rows[0].as_ref().unwrap_err();
        assert_eq!(error.id, "kc-7");
        assert!(
            error.message.contains("line 1: the answer \"Paris\""),
            "{}",
            error.message
        );
    }

    #[test]
    fn malformed_lines_name_their_number() {
        let two_blanks = ROW.replace(r#"["blank 1", "blank 2", "blank 3"]}"#, r#"["blank 1", "blank 2"]}"#);
        let file = format!(
            "{}\n{{oops\n{two_blanks}\n\n{}\n",
            ROW,
            ROW.replace(r#""id": "kc-7", "#, "")
                .replace("Belgium\", \"Fiji", "Fiji")
        );
        let rows = problem::load(file.as_bytes()).unwrap();

        assert_eq!(rows.len(), 3, "the two-blank row is skipped");
        assert!(rows[0].is_ok());
        let broken = rows[1].as_ref().unwrap_err();
        assert_eq!(broken.id, "line 2");
        assert!(broken.message.starts_with("line 2: invalid"), "{}", broken.message);
        let unnamed = rows[2].as_ref().unwrap_err();
        assert_eq!(unnamed.id, "5");
        assert!(unnamed.message.starts_with("line 5: "), "{}", unnamed.message);
    }

    #[test]
    fn options_cover_every_count_of_right_blanks() {
        let problem = problem();
        for seed in 0..50 {
            let fillings = options(&problem, seed);
            let mut rights: Vec<u32> = fillings
                .iter()
                .map(|f| f.iter().zip(&problem.answer).filter(|(a, b)| a == b).count() as u32)
                .collect();
            rights.sort();
            assert_eq!(rights, [0, 1, 2, 3], "seed {seed}");
            for filling in &fillings {
                for (i, entity) in filling.iter().enumerate() {
                    assert!(
                        problem.options[i].contains(entity),
                        "{entity} is not an option of blank {i}"
                    );
                }
            }
        }
    }

    #[test]
    fn options_are_stable_under_a_seed() {
        let problem = problem();
        assert_eq!(options(&problem, 4), options(&problem, 4));
        let distinct: std::collections::BTreeSet<_> = (0..20).map(|seed| options(&problem, seed)).collect();
        assert!(distinct.len() > 5, "{} distinct option sets", distinct.len());
    }

    #[test]
    fn extraction_reads_the_final_letter() {
        let question = problem::load(ROW.as_bytes()).unwrap().remove(0).unwrap();
        let problem = read_problem(&question).unwrap();
        let seed = 8;
        let fillings = options(&problem, seed);
        for (i, letter) in ['A', 'B', 'C', 'D'].into_iter().enumerate() {
            let response = format!("Blank 2 is its capital. Answer: {letter}");
            let answer = KnowledgeCrosswords::extract(question.clone(), seed, response).unwrap();
            assert_eq!(answer, serde_json::to_string(&fillings[i]).unwrap());
        }
        assert_eq!(KnowledgeCrosswords::extract(question, seed, "No idea.".into()), None);
    }

    #[test]
    fn correctness_counts_right_blanks() {
        let problem = problem();
        let cases = [
            (r#"["France", "Paris", "Belgium"]"#, 1.0, true),
            (r#"["France", "Paris", "Fiji"]"#, 2.0 / 3.0, false),
            (r#"["Chile", "Paris", "Fiji"]"#, 1.0 / 3.0, false),
            (r#"["Chile", "Tokyo", "Fiji"]"#, 0.0, false),
        ];
        for (answer, correctness, correct) in cases {
            let grade = grade(&problem, answer).unwrap();
            assert_eq!(grade.correctness, correctness, "{answer}");
            assert_eq!(grade.correct, correct, "{answer}");
        }
        assert!(grade(&problem, r#"["France"]"#).is_err());
        assert!(grade(&problem, "B").is_err());
    }

    #[test]
    fn prompt_lists_knowledge_constraints_and_options() {
        let problem = problem();
        let content = &prompt(&problem, 3)[0].content;
        assert!(
            content.contains("Knowledge: (France, located in, Western Europe)"),
            "{content}"
        );
        assert!(
            content.contains("Constraints: (blank 2, capital of, blank 1);"),
            "{content}"
        );
        let first = &options(&problem, 3)[0];
        let line = format!("A. blank 1: {}, blank 2: {}, blank 3: {}", first[0], first[1], first[2]);
        assert!(content.contains(&line), "{line} missing from {content}");
    }
}
