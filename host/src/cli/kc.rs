//! `wow kc`: Knowledge Crosswords puzzles from a knowledge graph.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;

use crate::kc::{self, KnowledgeGraph};

#[derive(Debug, Subcommand)]
pub enum KcCommand {
    /// Build three-blank puzzles from a TSV of `head`, `relation`, `tail`
    /// triples, keeping only those with exactly one solution over the
    /// whole graph, and write them as Knowledge Crosswords JSONL.
    Build {
        /// TSV file with a `head<TAB>relation<TAB>tail` header line.
        #[arg(long)]
        triples: PathBuf,

        /// JSONL file to write.
        #[arg(long, short)]
        out: PathBuf,

        /// Puzzles to build.
        #[arg(long, default_value_t = 100)]
        count: usize,

        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

pub fn kc_command(command: &KcCommand) -> anyhow::Result<()> {
    let KcCommand::Build {
        triples,
        out,
        count,
        seed,
    } = command;
    let graph = KnowledgeGraph::read_tsv(triples)?;
    if graph.self_loops > 0 {
        tracing::warn!(
            skipped = graph.self_loops,
            "skipping triples whose head and tail are the same name"
        );
    }
    let (puzzles, summary) = kc::build_puzzles(&graph, *count, *seed);

    let mut text = String::new();
    for puzzle in &puzzles {
        text.push_str(&serde_json::to_string(puzzle).context("serialize a puzzle")?);
        text.push('\n');
    }
    let mut file = std::fs::File::create(out).with_context(|| format!("failed to create {}", out.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("failed to write {}", out.display()))?;

    tracing::info!(
        attempts = summary.attempts,
        ambiguous = summary.ambiguous,
        unusable = summary.unusable,
        "wrote {} puzzles to {}",
        summary.built,
        out.display()
    );
    if summary.built < *count {
        tracing::warn!(
            requested = count,
            built = summary.built,
            "fewer puzzles than requested; the graph has too few uniquely solvable patterns"
        );
    }
    Ok(())
}
