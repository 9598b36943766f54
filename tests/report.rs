//! `wow report` over real runs of the default model: the tables match the
//! runs' JSON, and every figure of the HTML page renders in headless
//! Chromium.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use wow_tests::{model_path, shortest_path_data, write_preferences};

const CHROMIUM: &str = "/usr/bin/chromium";

fn cli() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wow-test-cli"));
    command.env("WOW_LOG", "warn").stdin(Stdio::null());
    command
}

fn run_cli(args: &[&str]) -> String {
    let output = cli().args(args).output().unwrap();
    assert!(
        output.status.success(),
        "wow {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Samples `questions` x `samples` shortest-path answers (from question
/// `skip` on) with the default model, optionally with an adapter merged.
fn sample_run(command: &str, out: &Path, skip: u32, questions: u32, adapter: Option<&Path>) {
    let model = model_path();
    let data = shortest_path_data();
    let (skip, questions) = (skip.to_string(), questions.to_string());
    let mut args = vec![
        command,
        "--out",
        out.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--skip",
        &skip,
        "--questions",
        &questions,
        "--samples",
        "3",
        "--max-tokens",
        "40",
    ];
    if let Some(adapter) = adapter {
        args.extend(["--adapter", adapter.to_str().unwrap()]);
    }
    run_cli(&args);
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Returns the rows of the Markdown table whose header starts with
/// `header`, as trimmed cells.
fn markdown_table(markdown: &str, header: &str) -> Vec<Vec<String>> {
    let mut lines = markdown.lines().skip_while(|line| !line.starts_with(header));
    assert!(
        lines.next().is_some(),
        "no table with header {header:?} in:\n{markdown}"
    );
    lines
        .skip(1)
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            line.trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_string())
                .collect()
        })
        .collect()
}

fn percent(accuracy: &Value) -> String {
    accuracy
        .as_f64()
        .map_or("n/a".to_string(), |a| format!("{:.1}%", a * 100.0))
}

/// Checks every row of the report's WoW accuracy table against the run's
/// `wow_accuracy.json`.
fn check_accuracy_table(markdown: &str, run: &Path) {
    let table = read_json(&run.join("wow_accuracy.json"));
    let methods = table["methods"].as_array().unwrap();
    let rows = markdown_table(markdown, "| task | evaluator | method |");
    assert_eq!(rows.len(), methods.len(), "one row per method");

    for (row, method) in rows.iter().zip(methods) {
        assert_eq!(row[0], table["task"].as_str().unwrap());
        assert_eq!(row[2], method["method"].as_str().unwrap());
        for (column, result) in method["margins"].as_array().unwrap().iter().enumerate() {
            assert_eq!(row[3 + 2 * column], percent(&result["accuracy"]), "{row:?}");
            assert_eq!(row[4 + 2 * column], result["pairs"].to_string(), "{row:?}");
        }
    }
}

/// Checks the alignment table against `alignment.json`, including which
/// cells are marked best.
fn check_alignment_table(markdown: &str, evaluation: &Path) {
    let table = read_json(&evaluation.join("alignment.json"));
    let expected = table["rows"].as_array().unwrap();
    let rows = markdown_table(markdown, "| source | p_wrong | Acc | ECE |");
    assert_eq!(rows.len(), expected.len());

    let column = |name: &str| -> Vec<Option<f64>> { expected.iter().map(|r| r["quality"][name].as_f64()).collect() };
    let best = |values: &[Option<f64>], lowest: bool| {
        let values = values.iter().flatten().copied();
        if lowest {
            values.reduce(f64::min)
        } else {
            values.reduce(f64::max)
        }
    };
    for (name, index, lowest) in [("p_wrong", 1, false), ("accuracy", 2, false), ("ece", 3, true)] {
        let values = column(name);
        let best = best(&values, lowest);
        for (row, value) in rows.iter().zip(&values) {
            let shown = value.map_or("n/a".to_string(), |v| format!("{v:.3}"));
            let marked = value.is_some() && *value == best;
            let cell = if marked { format!("**{shown}**") } else { shown };
            assert_eq!(row[index], cell, "{name} of {}", row[0]);
        }
    }
    for (row, expected) in rows.iter().zip(expected) {
        assert_eq!(row[0], expected["source"].as_str().unwrap());
        assert_eq!(row[4], expected["quality"]["responses"].to_string());
    }
}

/// Asserts that the page loads nothing from outside itself.
fn check_self_contained(html: &str) {
    for forbidden in ["<script", "src=", "href=", "url(", "@import", "<link"] {
        assert!(!html.contains(forbidden), "report.html contains {forbidden:?}");
    }
}

/// Returns the ids of the page's `<figure>` elements.
fn figure_ids(html: &str) -> Vec<String> {
    html.split("<figure id=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect()
}

/// Returns the frame colour of figure `index` in the screenshot page, a
/// pure colour that the plots never use.
fn frame_color(index: usize) -> [u8; 3] {
    [0, 255, 40 + 10 * index as u8]
}

/// Screenshots the report in headless Chromium with each figure's SVG
/// framed in its own colour, and returns the decoded RGB image.
fn screenshot(report: &Path, figures: &[String], scratch: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    let frames: String = figures
        .iter()
        .enumerate()
        .map(|(index, id)| {
            let [r, g, b] = frame_color(index);
            format!("#{id} svg{{outline:4px solid rgb({r},{g},{b});outline-offset:2px}}")
        })
        .collect();
    let page = scratch.join("page.html");
    std::fs::write(
        &page,
        html.replace("</head>", &format!("<style>{frames}</style></head>")),
    )
    .unwrap();

    let profile = tempfile::tempdir().unwrap();
    let png = scratch.join("page.png");
    // Tall enough for the tables above and between the figures.
    let height = 1800 + 520 * figures.len();
    let status = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("--window-size=1200,{height}"))
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|error| panic!("failed to start {CHROMIUM} (apt-get install chromium): {error}"));
    assert!(status.success(), "chromium failed to screenshot {}", page.display());
    decode_png(&png)
}

/// Decodes an 8-bit RGB or RGBA, non-interlaced PNG (as Chromium writes
/// screenshots) into its width, height and RGB pixels.
fn decode_png(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());

    let (mut width, mut height, mut channels) = (0u32, 0u32, 0usize);
    let mut compressed = Vec::new();
    let mut at = 8;
    while at + 8 <= bytes.len() {
        let length = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let kind = &bytes[at + 4..at + 8];
        let data = &bytes[at + 8..at + 8 + length];
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(data[0..4].try_into().unwrap());
                height = u32::from_be_bytes(data[4..8].try_into().unwrap());
                assert_eq!(data[8], 8, "bit depth");
                channels = match data[9] {
                    2 => 3,
                    6 => 4,
                    other => panic!("unsupported PNG colour type {other}"),
                };
                assert_eq!(data[12], 0, "interlaced PNG");
            }
            b"IDAT" => compressed.extend_from_slice(data),
            b"IEND" => break,
            _ => {}
        }
        at += 12 + length;
    }

    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(&compressed[..]), &mut raw).unwrap();
    let stride = width as usize * channels;
    assert_eq!(raw.len(), (stride + 1) * height as usize, "decompressed size");

    let mut image = vec![0u8; stride * height as usize];
    for row in 0..height as usize {
        let filter = raw[row * (stride + 1)];
        let line = &raw[row * (stride + 1) + 1..(row + 1) * (stride + 1)];
        for x in 0..stride {
            let left = if x >= channels {
                image[row * stride + x - channels]
            } else {
                0
            };
            let up = if row > 0 { image[(row - 1) * stride + x] } else { 0 };
            let up_left = if row > 0 && x >= channels {
                image[(row - 1) * stride + x - channels]
            } else {
                0
            };
            let predictor = match filter {
                0 => 0,
                1 => left,
                2 => up,
                3 => ((u16::from(left) + u16::from(up)) / 2) as u8,
                4 => paeth(left, up, up_left),
                other => panic!("invalid PNG filter {other}"),
            };
            image[row * stride + x] = line[x].wrapping_add(predictor);
        }
    }
    let pixels = image.chunks(channels).map(|p| [p[0], p[1], p[2]]).collect();
    (width, height, pixels)
}

fn paeth(left: u8, up: u8, up_left: u8) -> u8 {
    let estimate = i16::from(left) + i16::from(up) - i16::from(up_left);
    let (to_left, to_up, to_up_left) = (
        (estimate - i16::from(left)).abs(),
        (estimate - i16::from(up)).abs(),
        (estimate - i16::from(up_left)).abs(),
    );
    if to_left <= to_up && to_left <= to_up_left {
        left
    } else if to_up <= to_up_left {
        up
    } else {
        up_left
    }
}

/// Checks that each framed figure is on the screenshot and that the inside
/// of its frame is drawn on: many non-white pixels in several colours.
fn check_figures_visible(image: &(u32, u32, Vec<[u8; 3]>), figures: &[String]) {
    let (width, _, pixels) = image;
    for (index, id) in figures.iter().enumerate() {
        let color = frame_color(index);
        let frame: Vec<(u32, u32)> = pixels
            .iter()
            .enumerate()
            .filter(|(_, p)| **p == color)
            .map(|(i, _)| (i as u32 % width, i as u32 / width))
            .collect();
        assert!(!frame.is_empty(), "figure {id} is not on the screenshot");
        let (left, right) = (
            frame.iter().map(|p| p.0).min().unwrap(),
            frame.iter().map(|p| p.0).max().unwrap(),
        );
        let (top, bottom) = (
            frame.iter().map(|p| p.1).min().unwrap(),
            frame.iter().map(|p| p.1).max().unwrap(),
        );
        assert!(right - left > 600, "figure {id} spans x {left}..{right}");
        assert!(bottom - top > 400, "figure {id} spans y {top}..{bottom}");

        let inside: Vec<[u8; 3]> = (top + 8..bottom - 8)
            .flat_map(|y| (left + 8..right - 8).map(move |x| (x, y)))
            .map(|(x, y)| pixels[(y * width + x) as usize])
            .collect();
        let drawn = inside.iter().filter(|p| **p != [255, 255, 255]).count();
        let colors: std::collections::HashSet<[u8; 3]> = inside.iter().copied().collect();
        assert!(
            drawn * 100 > inside.len(),
            "figure {id} is blank: {drawn} of {} pixels drawn",
            inside.len()
        );
        assert!(colors.len() > 8, "figure {id} has only {} colours", colors.len());
    }
}

fn report(dirs: &[&Path], out: &Path) -> (String, String) {
    let mut args = vec!["report"];
    args.extend(dirs.iter().map(|dir| dir.to_str().unwrap()));
    args.extend(["--out", out.to_str().unwrap()]);
    let printed = run_cli(&args);
    assert!(printed.contains("report.html"), "{printed}");
    (
        std::fs::read_to_string(out.join("report.md")).unwrap(),
        std::fs::read_to_string(out.join("report.html")).unwrap(),
    )
}

#[test]
fn report_without_alignment_says_so() {
    let root = tempfile::tempdir().unwrap();
    let (run, out) = (root.path().join("train"), root.path().join("report"));
    sample_run("run", &run, 0, 3, None);

    let (markdown, html) = report(&[&run], &out);
    check_accuracy_table(&markdown, &run);
    assert!(markdown.contains("train: no alignment results"), "{markdown}");
    assert!(markdown.contains("has no alignment.json"));
    check_self_contained(&html);

    let figures = figure_ids(&html);
    assert_eq!(figures, ["wow-accuracy-1", "reliability-1", "wrong-correctness-2"]);
    for id in &figures {
        assert!(out.join(format!("figures/{id}.svg")).is_file(), "figures/{id}.svg");
        assert!(markdown.contains(&format!("(figures/{id}.svg)")));
    }
    let image = screenshot(&out, &figures, root.path());
    check_figures_visible(&image, &figures);
}

/// Trains an adapter on hand-written pairs, samples one held-out question
/// with and without it, and checks the report of that evaluation. The test
/// above checks the accuracy table of a sampled run.
#[test]
fn report_of_aligned_model_matches_json() {
    let root = tempfile::tempdir().unwrap();
    let path = |name: &str| root.path().join(name);
    let preferences = path("pairs.jsonl");
    write_preferences(&preferences, 3);

    let model = model_path();
    run_cli(&[
        "align",
        "--preferences",
        preferences.to_str().unwrap(),
        "--out",
        path("adapter").to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--epochs",
        "1",
        "--gradient-accumulation-steps",
        "1",
        "--learning-rate",
        "1e-3",
    ]);
    sample_run("sample", &path("heldout-original"), 3, 1, None);
    sample_run("sample", &path("heldout-oracle"), 3, 1, Some(&path("adapter")));
    run_cli(&[
        "evaluate",
        "--original",
        path("heldout-original").to_str().unwrap(),
        "--aligned",
        &format!("oracle={}", path("heldout-oracle").display()),
        "--out",
        path("evaluation").to_str().unwrap(),
    ]);

    let out = path("report");
    let (markdown, html) = report(&[&path("evaluation")], &out);
    check_alignment_table(&markdown, &path("evaluation"));
    check_self_contained(&html);

    let figures = figure_ids(&html);
    assert_eq!(figures, ["reliability-1", "wrong-correctness-2"]);
    let image = screenshot(&out, &figures, root.path());
    check_figures_visible(&image, &figures);
}

#[test]
fn report_rejects_folder_without_results() {
    let root = tempfile::tempdir().unwrap();
    let output = cli()
        .args(["report", root.path().to_str().unwrap(), "--out"])
        .arg(root.path().join("report"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("has no results"), "{stderr}");
    assert!(stderr.contains(root.path().to_str().unwrap()), "{stderr}");
}
