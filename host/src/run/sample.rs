//! The sampling stage: N responses per question, extracted and graded.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::ProgressBar;

use super::store::{ResponseLog, ResponseRecord, RunDir};
use super::{RunConfig, RunError};
use crate::model::{Generation, Message, Sampling};
use crate::plugin::{Grade, PluginError, Question, ScorerPlugin, SharedModel, TaskPlugin};

/// The plugins that turn a response into a correctness.
pub struct Graders<'a> {
    pub task: &'a TaskPlugin,
    /// Grades wrong answers by the mean plausibility of the statements the
    /// task returns for them; `None` keeps the task's correctness.
    pub scorer: Option<&'a ScorerPlugin>,
}

/// Counts from one sampling pass.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SampleSummary {
    pub questions: usize,
    /// Responses sampled in this pass (not counting earlier passes).
    pub sampled: usize,
    /// Responses whose extraction or grading failed.
    pub failed_items: usize,
    /// Questions for which no response could be sampled, with the reason.
    pub failed_questions: Vec<(String, String)>,
}

/// Loads the dataset through the task plugin and keeps `config.questions`
/// valid questions after the first `config.skip`. Invalid rows are logged and skipped.
pub fn load_questions(task: &TaskPlugin, config: &RunConfig) -> Result<Vec<Question>, RunError> {
    let bytes = std::fs::read(&config.data).map_err(|source| RunError::io(&config.data, source))?;
    let file = config.data.display().to_string();
    let rows = task.load(&bytes, &file)?;

    let mut questions = Vec::new();
    let mut invalid = 0;
    for row in rows {
        match row {
            Ok(question) => questions.push(question),
            Err(error) => {
                invalid += 1;
                tracing::warn!(file = %file, item = %error.id, "skipping invalid dataset row: {}", error.message);
            }
        }
    }
    if invalid > 0 {
        tracing::warn!(file = %file, invalid, valid = questions.len(), "dataset has invalid rows; see the warnings above");
    }
    questions.drain(..config.skip.min(questions.len()));
    if config.questions > 0 {
        questions.truncate(config.questions);
    }
    if questions.is_empty() {
        return Err(RunError::NoQuestions { file });
    }
    Ok(questions)
}

/// A model that answers the run's questions.
pub struct Generator {
    /// Name recorded with its responses; `None` for the run's own model.
    pub name: Option<String>,
    pub model: SharedModel,
}

/// Samples every response not yet in the run's log, `config.samples` per
/// question from each generator: generator `g` writes samples
/// `g * samples ..`. Stops between questions when `stop` is set; what was
/// logged stays.
pub fn sample(
    run: &RunDir,
    config: &RunConfig,
    graders: &Graders,
    generators: &[Generator],
    questions: &[Question],
    progress: &ProgressBar,
    stop: &AtomicBool,
) -> Result<SampleSummary, RunError> {
    let mut log = ResponseLog::open(run)?;
    let mut summary = SampleSummary {
        questions: questions.len(),
        ..Default::default()
    };
    progress.set_length(questions.len() as u64);

    for question in questions {
        if stop.load(Ordering::SeqCst) {
            return Err(RunError::Interrupted);
        }
        progress.set_message(format!("question {}", question.id));

        for (index, generator) in generators.iter().enumerate() {
            let first = index as u32 * config.samples;
            let missing: Vec<u32> = (first..first + config.samples)
                .filter(|&i| !log.contains(&question.id, i))
                .collect();
            if missing.is_empty() {
                continue;
            }
            match sample_question(config, graders, generator, question, first, &missing) {
                Ok(records) => {
                    summary.sampled += records.len();
                    summary.failed_items += records.iter().filter(|r| r.error.is_some()).count();
                    log.append(&records)?;
                }
                Err(reason) => {
                    let generator = generator.name.as_deref().unwrap_or("the run's model");
                    tracing::error!(question = %question.id, generator, "sampling failed: {reason}");
                    summary.failed_questions.push((question.id.clone(), reason));
                }
            }
        }
        progress.inc(1);
    }
    Ok(summary)
}

/// Samples the `missing` responses of one question from one generator,
/// whose samples start at index `first`. An `Err` means no response could
/// be sampled; per-response plugin failures are recorded in the records
/// instead.
fn sample_question(
    config: &RunConfig,
    graders: &Graders,
    generator: &Generator,
    question: &Question,
    first: u32,
    missing: &[u32],
) -> Result<Vec<ResponseRecord>, String> {
    let question_seed = config.seed ^ fnv1a(&question.id);
    let prompts = (first..first + config.samples)
        .map(|i| graders.task.prompt(question, sample_seed(question_seed, i)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let generation_seed = sample_seed(question_seed, first);
    let generations = generate(config, &generator.model, &prompts, generation_seed)?;

    let mut grader = QuestionGrader {
        graders,
        question,
        grades: BTreeMap::new(),
    };
    let records = missing
        .iter()
        .map(|&i| {
            let generation = &generations[(i - first) as usize];
            let prompt = prompts[(i - first) as usize].clone();
            let mut record = grader.grade_response(sample_seed(question_seed, i), i, prompt, generation);
            record.generator = generator.name.clone();
            record
        })
        .collect();
    Ok(records)
}

/// Draws one generation per sample index. When every sample shares its
/// prompt, the model prefills it once and decodes the samples as a batch.
fn generate(
    config: &RunConfig,
    model: &SharedModel,
    prompts: &[Vec<Message>],
    seed: u64,
) -> Result<Vec<Generation>, String> {
    let sampling = |n, seed| Sampling {
        temperature: config.temperature,
        top_p: config.top_p,
        max_tokens: config.max_tokens,
        n,
        seed,
    };
    let mut model = model
        .lock()
        .map_err(|_| "the model is unavailable after an earlier failure".to_string())?;

    let shared_prompt = prompts.windows(2).all(|w| w[0] == w[1]);
    if shared_prompt {
        return model
            .generate(&prompts[0], &sampling(config.samples, seed))
            .map_err(|e| e.to_string());
    }

    let mut generations = Vec::with_capacity(prompts.len());
    for (i, prompt) in prompts.iter().enumerate() {
        let mut drawn = model
            .generate(prompt, &sampling(1, sample_seed(seed, i as u32)))
            .map_err(|e| e.to_string())?;
        generations.push(drawn.remove(0));
    }
    Ok(generations)
}

/// Grades the responses to one question, grading each distinct answer once.
struct QuestionGrader<'a> {
    graders: &'a Graders<'a>,
    question: &'a Question,
    grades: BTreeMap<String, Result<Grade, String>>,
}

impl QuestionGrader<'_> {
    fn grade_response(
        &mut self,
        seed: u64,
        sample: u32,
        prompt: Vec<Message>,
        generation: &Generation,
    ) -> ResponseRecord {
        let question = self.question;
        let mut record = ResponseRecord {
            question_id: question.id.clone(),
            sample,
            prompt,
            text: generation.text.clone(),
            mean_nll: generation.mean_nll(),
            token_count: generation.token_nll.len() as u32,
            answer: None,
            correctness: None,
            correct: false,
            error: None,
            generator: None,
        };

        let answer = match self.graders.task.extract(question, seed, &generation.text) {
            Ok(answer) => answer,
            Err(error) => {
                tracing::warn!(question = %question.id, sample, "{error}");
                record.error = Some(error.to_string());
                return record;
            }
        };
        if let Some(answer) = &answer {
            match self.grade(answer) {
                Ok(grade) => {
                    record.correctness = Some(grade.correctness);
                    record.correct = grade.correct;
                }
                Err(error) => {
                    tracing::warn!(question = %question.id, sample, "{error}");
                    record.error = Some(error);
                }
            }
        }
        record.answer = answer;
        record
    }

    fn grade(&mut self, answer: &str) -> Result<Grade, String> {
        if let Some(grade) = self.grades.get(answer) {
            return grade.clone();
        }
        let grade = grade_answer(self.graders, self.question, answer).map_err(|e| e.to_string());
        self.grades.insert(answer.to_owned(), grade.clone());
        grade
    }
}

/// Grades one answer with the task; a wrong answer whose task returns
/// statements gets the mean score of those statements from the scorer.
fn grade_answer(graders: &Graders, question: &Question, answer: &str) -> Result<Grade, PluginError> {
    let grade = graders.task.grade(question, answer)?;
    let Some(scorer) = graders.scorer else {
        return Ok(grade);
    };
    if grade.correct {
        return Ok(grade);
    }

    let statements = graders.task.statements(question, answer)?;
    if statements.is_empty() {
        return Ok(grade);
    }
    let mut total = 0.0;
    for statement in &statements {
        total += scorer.score(question, statement)?;
    }
    Ok(Grade {
        correctness: total / statements.len() as f64,
        correct: false,
    })
}

/// Seed of one sample's prompt (for tasks that shuffle options).
fn sample_seed(question_seed: u64, sample: u32) -> u64 {
    question_seed.wrapping_add(u64::from(sample).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// FNV-1a hash, so that a question's seed depends on its id and not on its
/// position in the file.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
