//! What the simulated Fabric tenant holds: workspaces with their role assignments, mirrored
//! databases with their mirroring status, and long-running operations.
//!
//! Statuses follow `mirroredDatabase/definitions.json` of Microsoft's `fabric-rest-api-specs`:
//! `MirroringStatus` is Initializing (the SQL endpoint is being provisioned), Initialized (ready to
//! start), Starting, Running, Stopping, Stopped. Transitions take the time a test sets
//! ([`crate::fabric::FabricOptions`]), zero by default: a status is advanced when it is read.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::replicator::Replicator;

/// A workspace role (`WorkspaceRole` in `common/definitions.json`), in increasing power.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Read items.
    Viewer,
    /// Create and change items, write OneLake data.
    Contributor,
    /// Contributor, and share the workspace with others (not as admins).
    Member,
    /// Everything.
    Admin,
}

impl Role {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "Viewer",
            Role::Contributor => "Contributor",
            Role::Member => "Member",
            Role::Admin => "Admin",
        }
    }

    /// Parses an API name.
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "Viewer" => Role::Viewer,
            "Contributor" => Role::Contributor,
            "Member" => Role::Member,
            "Admin" => Role::Admin,
            _ => return None,
        })
    }
}

/// A role assignment of a workspace.
#[derive(Clone, Debug)]
pub(crate) struct Assignment {
    pub id: String,
    pub principal: String,
    pub principal_type: String,
    pub role: Role,
}

#[derive(Debug)]
pub(crate) struct Workspace {
    pub id: String,
    pub name: String,
    pub assignments: Vec<Assignment>,
}

impl Workspace {
    pub fn role_of(&self, principal: &str) -> Option<Role> {
        self.assignments
            .iter()
            .filter(|a| a.principal == principal)
            .map(|a| a.role)
            .max()
    }
}

/// `MirroringStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MirroringStatus {
    /// The SQL endpoint is being provisioned; mirroring cannot start yet.
    Initializing,
    /// Ready to start.
    Initialized,
    /// Starting.
    Starting,
    /// Running: landing-zone files are replicated.
    Running,
    /// Stopping.
    Stopping,
    /// Stopped.
    Stopped,
}

impl MirroringStatus {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            MirroringStatus::Initializing => "Initializing",
            MirroringStatus::Initialized => "Initialized",
            MirroringStatus::Starting => "Starting",
            MirroringStatus::Running => "Running",
            MirroringStatus::Stopping => "Stopping",
            MirroringStatus::Stopped => "Stopped",
        }
    }
}

pub(crate) struct Item {
    pub id: String,
    pub workspace: String,
    pub name: String,
    pub description: String,
    /// `target.typeProperties.defaultSchema` of `mirroring.json` (`dbo` if absent).
    pub default_schema: String,
    /// The status, and when it moves on by itself (`Initializing`, `Starting`, `Stopping`).
    pub status: MirroringStatus,
    pub next: Option<(Instant, MirroringStatus)>,
    /// The landing zone's replicator, scanned while mirroring runs.
    pub replicator: Arc<Mutex<Replicator>>,
}

impl Item {
    /// Moves on a timed transition that is due.
    pub fn advance(&mut self) {
        if let Some((at, next)) = self.next {
            if Instant::now() >= at {
                self.status = next;
                self.next = None;
            }
        }
    }

    pub fn transition(&mut self, now: MirroringStatus, then: MirroringStatus, after: Duration) {
        self.status = now;
        self.next = Some((Instant::now() + after, then));
        self.advance();
    }
}

/// A long-running operation (`OperationState` of the core long-running operations API).
pub(crate) struct Operation {
    pub id: String,
    /// State polls left before it succeeds.
    pub polls_left: usize,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    /// The result: the created item.
    pub result: serde_json::Value,
}

#[derive(Default)]
pub(crate) struct Tenant {
    pub workspaces: BTreeMap<String, Workspace>,
    /// By item id.
    pub items: BTreeMap<String, Item>,
    pub operations: BTreeMap<String, Operation>,
}
