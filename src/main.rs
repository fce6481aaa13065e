//! The `mirror` binary: the command line with the first-party components.

fn main() -> std::process::ExitCode {
    mirror::main()
}
