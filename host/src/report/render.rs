//! Markdown and HTML renderings of the report's blocks.

use std::fmt::Write as _;

use super::FIGURES_DIR;
use super::document::{Block, Table};

/// Renders Markdown; figures are linked as `figures/ID.svg`.
pub fn markdown(blocks: &[Block]) -> String {
    let mut out = String::new();
    for block in blocks {
        match block {
            Block::Heading { level, text } => writeln!(out, "{} {text}\n", "#".repeat(usize::from(*level))),
            Block::Paragraph(text) => writeln!(out, "{text}\n"),
            Block::Table(table) => writeln!(out, "{}", markdown_table(table)),
            Block::Figure(figure) => writeln!(
                out,
                "![{}]({FIGURES_DIR}/{}.svg)\n\n*{}*\n",
                figure.id, figure.id, figure.caption
            ),
        }
        .expect("writing to a String succeeds");
    }
    out
}

fn markdown_table(table: &Table) -> String {
    let mut out = format!("| {} |\n|", table.header.join(" | "));
    for &numeric in &table.numeric {
        out.push_str(if numeric { "---:|" } else { "---|" });
    }
    out.push('\n');
    for row in &table.rows {
        let cells: Vec<String> = row
            .iter()
            .map(|cell| {
                let text = cell.text.replace('|', "\\|");
                if cell.best { format!("**{text}**") } else { text }
            })
            .collect();
        writeln!(out, "| {} |", cells.join(" | ")).expect("writing to a String succeeds");
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 10px}\
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}\
figure{margin:1.5em 0;display:inline-block;vertical-align:top}figcaption{max-width:640px;font-size:0.9em;color:#555}\
figure svg{display:block}";

/// Renders one self-contained HTML page: inline CSS and SVG, no scripts and
/// no external resources.
pub fn html(blocks: &[Block]) -> String {
    let title = blocks
        .iter()
        .find_map(|block| match block {
            Block::Heading { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .unwrap_or("wow report");
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(title)
    );
    for block in blocks {
        match block {
            Block::Heading { level, text } => writeln!(out, "<h{level}>{}</h{level}>", escape(text)),
            Block::Paragraph(text) => writeln!(out, "<p>{}</p>", escape(text)),
            Block::Table(table) => writeln!(out, "{}", html_table(table)),
            Block::Figure(figure) => writeln!(
                out,
                "<figure id=\"{}\">\n{}\n<figcaption>{}</figcaption>\n</figure>",
                escape(&figure.id),
                strip_xml_declaration(&figure.svg),
                escape(&figure.caption)
            ),
        }
        .expect("writing to a String succeeds");
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn html_table(table: &Table) -> String {
    let mut out = String::from("<table>\n<thead><tr>");
    for name in &table.header {
        write!(out, "<th>{}</th>", escape(name)).expect("writing to a String succeeds");
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &table.rows {
        out.push_str("<tr>");
        for (cell, &numeric) in row.iter().zip(&table.numeric) {
            let class = if numeric { " class=\"num\"" } else { "" };
            let text = escape(&cell.text);
            let text = if cell.best {
                format!("<strong>{text}</strong>")
            } else {
                text
            };
            write!(out, "<td{class}>{text}</td>").expect("writing to a String succeeds");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>");
    out
}

/// Drops a leading `<?xml ...?>` line, which has no place inside HTML.
fn strip_xml_declaration(svg: &str) -> &str {
    match svg.strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").map_or(svg, |(_, body)| body.trim_start()),
        None => svg,
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
