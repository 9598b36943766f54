//! The `wow` command line, built inside the test package so that tests can
//! spawn it by path and kill it.

fn main() -> std::process::ExitCode {
    wow::cli::main()
}
