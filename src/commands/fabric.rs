//! `mirror fabric`: create, start, stop and watch the Fabric mirrored database of a landing zone,
//! and give an identity its workspace role, with the Fabric REST API.

use mirror_onelake::auth::AuthConfig;
use mirror_onelake::fabric::model::TableMirroringStatus;
use mirror_onelake::fabric::{landing_zone_item, FabricClient, FabricError, Grant};
use mirror_onelake::OneLakeSinkConfig;

use super::load_config;
use crate::cli::{FabricCommand, FabricTarget};
use crate::exit::Code;

/// The client and the item the command line designates.
struct Target {
    client: FabricClient,
    workspace: Option<String>,
    item: Option<String>,
}

fn usage(message: impl std::fmt::Display) -> Code {
    crate::print::error(&message);
    Code::Usage
}

fn failed(e: FabricError) -> Code {
    crate::print::error(&e);
    Code::Failed
}

/// Credentials, API root and item from `--config` (its onelake sink) and the flags.
fn target(args: &FabricTarget) -> Result<Target, Code> {
    let mut auth = AuthConfig::Auto {};
    let mut api = None;
    let (mut workspace, mut item) = (None, None);
    if let Some(path) = &args.config {
        let config = load_config(path)?;
        let sinks: Vec<(&str, &OneLakeSinkConfig)> = config
            .sinks
            .iter()
            .filter_map(|s| {
                let c = s.config.as_any()?.downcast_ref::<OneLakeSinkConfig>()?;
                Some((s.name.as_str(), c))
            })
            .collect();
        let chosen = match (&args.sink, sinks.as_slice()) {
            (Some(name), _) => sinks.iter().find(|(n, _)| n == name),
            (None, [one]) => Some(one),
            _ => None,
        };
        let Some((_, sink)) = chosen else {
            let names: Vec<&str> = sinks.iter().map(|(n, _)| *n).collect();
            return Err(usage(format!(
                "{}: choose one onelake sink with --sink (onelake sinks: {})",
                config.file,
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )));
        };
        let derived = landing_zone_item(&sink.landing_zone);
        let fabric = sink.fabric.as_ref();
        auth = fabric
            .and_then(|f| f.auth.clone())
            .unwrap_or_else(|| sink.auth.clone());
        api = fabric.and_then(|f| f.api.clone());
        workspace = fabric
            .and_then(|f| f.workspace.clone())
            .or_else(|| derived.as_ref().map(|d| d.0.clone()));
        item = fabric
            .and_then(|f| f.item.clone())
            .or_else(|| derived.map(|d| d.1));
    }
    let api = args.api.clone().or(api);
    let client = FabricClient::new(api.as_deref(), &auth).map_err(failed)?;
    Ok(Target {
        client,
        workspace: args.workspace.clone().or(workspace),
        item: args.item.clone().or(item),
    })
}

fn need<'a>(value: &'a Option<String>, what: &str) -> Result<&'a str, Code> {
    value.as_deref().ok_or_else(|| {
        usage(format!(
            "which {what}? give --{what} (or --config with a onelake sink whose `fabric` or \
             OneLake landing_zone names it)"
        ))
    })
}

/// Runs one `mirror fabric` command.
pub async fn fabric(command: FabricCommand) -> Code {
    match run(command).await {
        Ok(()) => Code::Ok,
        Err(code) => code,
    }
}

async fn run(command: FabricCommand) -> Result<(), Code> {
    match command {
        FabricCommand::Create {
            name,
            description,
            default_schema,
            no_start,
            target: args,
        } => {
            let t = target(&args)?;
            let ws = workspace(&t).await?;
            println!(
                "creating mirrored database `{name}` in workspace `{}` ({})",
                ws.display_name, ws.id
            );
            let db = t
                .client
                .create_mirrored_database(&ws.id, &name, &description, &default_schema)
                .await
                .map_err(failed)?;
            println!("created: {} ({})", db.display_name, db.id);
            let Some(landing_zone) = db.landing_zone() else {
                eprintln!("error: Fabric did not report the item's oneLakeTablesPath");
                return Err(Code::Failed);
            };
            if !no_start {
                // Start is refused while the SQL endpoint is still being provisioned.
                t.client
                    .wait_for_status(&ws.id, &db.id, &["Initialized", "Stopped", "Running"])
                    .await
                    .map_err(failed)?;
                t.client
                    .start_mirroring(&ws.id, &db.id)
                    .await
                    .map_err(failed)?;
                let status = t
                    .client
                    .wait_for_status(&ws.id, &db.id, &["Running"])
                    .await
                    .map_err(failed)?;
                println!("mirroring: {}", status.status);
            }
            println!("landing zone: {landing_zone}");
            if let Some(path) = &args.config {
                let sink = crate::config_edit::set_landing_zone(
                    path,
                    args.sink.as_deref(),
                    &landing_zone,
                    &ws.id,
                    &db.id,
                )
                .map_err(usage)?;
                println!(
                    "{}: [sinks.{sink}] landing_zone and fabric set",
                    path.display()
                );
            }
            println!(
                "the identity mirror writes with needs the Contributor role in the workspace \
                 (`mirror fabric grant --workspace {} --principal <object id>`)",
                ws.id
            );
            Ok(())
        }
        FabricCommand::Start(args) => change(&args, true).await,
        FabricCommand::Stop(args) => change(&args, false).await,
        FabricCommand::Status(args) => status(&args).await,
        FabricCommand::Grant {
            principal,
            role,
            principal_type,
            target: args,
        } => {
            let t = target(&args)?;
            let ws = workspace(&t).await?;
            let outcome = t
                .client
                .grant(&ws.id, &principal, &principal_type, &role)
                .await
                .map_err(failed)?;
            let ws_name = format!("workspace `{}` ({})", ws.display_name, ws.id);
            match outcome {
                Grant::Added => println!("{principal} now has the {role} role in {ws_name}"),
                Grant::Raised(from) => {
                    println!("{principal}'s role in {ws_name} raised from {from} to {role}")
                }
                Grant::AlreadyHad(had) => {
                    println!("{principal} already has the {had} role in {ws_name}: nothing to do")
                }
            }
            Ok(())
        }
    }
}

async fn workspace(t: &Target) -> Result<mirror_onelake::fabric::model::Workspace, Code> {
    t.client
        .workspace(need(&t.workspace, "workspace")?)
        .await
        .map_err(failed)
}

async fn resolve(t: &Target) -> Result<(String, String, String), Code> {
    let ws = workspace(t).await?;
    let db = t
        .client
        .mirrored_database(&ws.id, need(&t.item, "item")?)
        .await
        .map_err(failed)?;
    let shown = format!(
        "mirrored database `{}` ({}) in workspace `{}` ({})",
        db.display_name, db.id, ws.display_name, ws.id
    );
    Ok((ws.id, db.id, shown))
}

async fn change(args: &FabricTarget, start: bool) -> Result<(), Code> {
    let t = target(args)?;
    let (ws, item, shown) = resolve(&t).await?;
    let wanted = if start {
        t.client
            .wait_for_status(
                &ws,
                &item,
                &["Initialized", "Stopped", "Running", "Starting"],
            )
            .await
            .map_err(failed)?;
        t.client.start_mirroring(&ws, &item).await.map_err(failed)?;
        "Running"
    } else {
        t.client.stop_mirroring(&ws, &item).await.map_err(failed)?;
        "Stopped"
    };
    let status = t
        .client
        .wait_for_status(&ws, &item, &[wanted])
        .await
        .map_err(failed)?;
    println!("{shown}: {}", status.status);
    Ok(())
}

/// One table line: `dbo.orders  Replicating  1200 rows (83.1 KiB), last sync ...`.
pub(crate) fn table_line(t: &TableMirroringStatus) -> String {
    let name = match (&t.source_schema_name, &t.source_table_name) {
        (Some(s), Some(n)) => format!("{s}.{n}"),
        (None, Some(n)) => n.clone(),
        _ => "(unnamed)".into(),
    };
    let mut line = format!("{name:<32} {:<13}", t.status);
    if let Some(m) = &t.metrics {
        line.push_str(&format!(
            " {} rows processed ({} bytes), last sync {}",
            m.processed_rows,
            m.processed_bytes,
            m.last_sync_date_time.as_deref().unwrap_or("never")
        ));
    }
    if let Some(e) = &t.error {
        line.push_str(&format!(
            "\n{:34}error: {}: {}",
            "", e.error_code, e.message
        ));
    }
    line
}

async fn status(args: &FabricTarget) -> Result<(), Code> {
    let t = target(args)?;
    let (ws, item, shown) = resolve(&t).await?;
    let db = t
        .client
        .mirrored_database(&ws, &item)
        .await
        .map_err(failed)?;
    let status = t
        .client
        .mirroring_status(&ws, &item)
        .await
        .map_err(failed)?;
    println!("{shown}: {}", status.status);
    if let Some(e) = &status.error {
        println!("  error: {}: {}", e.error_code, e.message);
    }
    if let Some(lz) = db.landing_zone() {
        println!("landing zone: {lz}");
    }
    let tables = t
        .client
        .tables_mirroring_status(&ws, &item)
        .await
        .map_err(failed)?;
    println!("tables: {}", tables.len());
    for table in &tables {
        println!("  {}", table_line(table));
    }
    Ok(())
}
