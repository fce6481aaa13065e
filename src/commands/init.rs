//! `mirror init`: write a starter `mirror.toml`, or convert the Python app's `.env`.

use std::io::Write;

use crate::cli::InitArgs;
use crate::exit::Code;
use crate::init::{dotenv, from_app_env, starter, Starter};

pub fn init(args: &InitArgs) -> Code {
    let fail = |message: String| {
        crate::print::error(&message);
        Code::Usage
    };
    let (text, notes, env) = match &args.from_env {
        Some(path) => {
            let shown = path.display().to_string();
            let raw = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => return fail(format!("{shown}: {e}")),
            };
            let parsed = match dotenv::parse(&raw) {
                Ok(p) => p,
                Err(e) => return fail(format!("{shown}: {e}")),
            };
            match from_app_env(&shown, &parsed) {
                Ok(c) => (c.toml, c.notes, c.env),
                Err(e) => return fail(e),
            }
        }
        None => {
            let s = Starter {
                uri_var: args.uri_var.clone(),
                databases: args.databases.clone(),
                collections: args.collections.clone(),
                landing_zone: args.landing_zone.clone(),
            };
            match starter(&s) {
                Ok(t) => (t, Vec::new(), vec![args.uri_var.clone()]),
                Err(e) => return fail(e),
            }
        }
    };
    let out = &args.output;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .create_new(!args.force)
        .open(out);
    let written = file.and_then(|mut f| f.write_all(text.as_bytes()));
    if let Err(e) = written {
        return fail(if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!("{} exists; pass --force to replace it", out.display())
        } else {
            format!("{}: {e}", out.display())
        });
    }
    println!("wrote {}", out.display());
    for note in &notes {
        println!("  note: {note}");
    }
    println!(
        "next: set {} in the environment, then `mirror check --config {}`",
        env.join(" and "),
        out.display()
    );
    Code::Ok
}
