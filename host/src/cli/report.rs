//! `wow report`: Markdown and HTML reports over run and evaluation folders.

use std::path::PathBuf;

use clap::Args as ClapArgs;

use crate::report::{self, REPORT_HTML, REPORT_MARKDOWN};

/// Arguments of `wow report`.
#[derive(Debug, Clone, ClapArgs)]
pub struct ReportArgs {
    /// Run folders (from `wow run`) and evaluation folders (from `wow
    /// evaluate`), in the order the report shows them.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,

    /// Folder for report.md, report.html and figures/.
    #[arg(long, short)]
    pub out: PathBuf,
}

/// Builds the report and writes it into `args.out`.
pub fn report_command(args: &ReportArgs) -> anyhow::Result<()> {
    let report = report::build_report(&args.runs)?;
    report::write_report(&report, &args.out)?;
    println!(
        "wrote {} and {} with {} figures in {}",
        REPORT_MARKDOWN,
        REPORT_HTML,
        report.figures().count(),
        args.out.display()
    );
    Ok(())
}
