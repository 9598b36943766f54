//! The `wow` command-line interface; the commands live in [`wow::cli`].

fn main() -> std::process::ExitCode {
    wow::cli::main()
}
