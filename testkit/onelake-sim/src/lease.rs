//! Leases on paths: DFS `Path - Lease` (`POST` with `x-ms-lease-action`) and Blob `Lease Blob`
//! (`PUT ?comp=lease`) share one state machine, as they do on the service.
//!
//! States and transitions follow "Lease Blob" (learn.microsoft.com/rest/api/storageservices/lease-blob)
//! and the ADLS Gen2 specification's `Path_Lease` (azure-rest-api-specs,
//! `specification/storage/data-plane/Microsoft.StorageDataLake/.../DataLakeStorage.json`):
//! - `acquire` needs `x-ms-lease-duration` of 15 to 60 seconds or -1 (infinite); an optional
//!   `x-ms-proposed-lease-id` names the lease; acquiring a live lease with its own id renews it;
//! - `renew`, `change` (to `x-ms-proposed-lease-id`) and `release` need the current
//!   `x-ms-lease-id`; an expired lease can still be renewed or released by its id;
//! - `break` ends the lease after `x-ms-lease-break-period` seconds (0 to 60; default: what is
//!   left of a fixed lease, at once for an infinite one); a breaking lease can only be broken or
//!   released, a broken one re-acquired;
//! - while a lease is live (leased or breaking), writes and deletes need its id: none is 412
//!   `LeaseIdMissing`, another 412 `LeaseIdMismatchWithBlobOperation`; an id given for a path
//!   without a live lease is 412 `LeaseNotPresentWithBlobOperation` (or `LeaseLost` once it
//!   expired).
//!
//! Error codes are those of the Blob service error code table
//! (learn.microsoft.com/rest/api/storageservices/blob-service-error-codes), which the DFS
//! endpoint answers for the same conditions.

use chrono::{DateTime, Duration, Utc};

use crate::storage::SimError;

/// A lease's state at a moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseState {
    /// Held, not expired.
    Leased,
    /// Held once, expired by its duration.
    Expired,
    /// Being broken: still blocks writers without its id until the break period ends.
    Breaking,
    /// Broken: may be acquired again.
    Broken,
}

/// One path's lease.
#[derive(Clone, Debug)]
pub struct Lease {
    /// The lease id.
    pub id: String,
    /// When it expires (`None`: infinite).
    pub expires: Option<DateTime<Utc>>,
    /// Seconds it was acquired for (-1: infinite).
    pub duration: i64,
    /// When a break takes effect.
    pub broken_at: Option<DateTime<Utc>>,
}

/// What a lease request asks.
#[derive(Clone, Debug)]
pub struct LeaseRequest {
    /// `acquire`, `renew`, `change`, `release` or `break`.
    pub action: String,
    /// `x-ms-lease-id`.
    pub lease_id: Option<String>,
    /// `x-ms-proposed-lease-id`.
    pub proposed_id: Option<String>,
    /// `x-ms-lease-duration`.
    pub duration: Option<String>,
    /// `x-ms-lease-break-period`.
    pub break_period: Option<String>,
}

/// The answer to a lease request: status, lease id to return, seconds left (`break`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseAnswer {
    /// 200 (renew, change, release), 201 (acquire) or 202 (break).
    pub status: u16,
    /// `x-ms-lease-id` of the answer.
    pub lease_id: Option<String>,
    /// `x-ms-lease-time` of a break.
    pub lease_time: Option<i64>,
}

fn conflict(code: &'static str, message: &str) -> SimError {
    SimError::new(409, code, message)
}

fn bad_header(name: &str) -> SimError {
    SimError::new(
        400,
        "InvalidHeaderValue",
        format!("The value for one of the HTTP headers is not in the correct format. ({name})"),
    )
}

fn missing_header(name: &str) -> SimError {
    SimError::new(
        400,
        "MissingRequiredHeader",
        format!("An HTTP header that's mandatory for this request is not specified. ({name})"),
    )
}

fn lease_id_of(value: &str, name: &str) -> Result<String, SimError> {
    uuid::Uuid::parse_str(value.trim())
        .map(|u| u.to_string())
        .map_err(|_| bad_header(name))
}

impl Lease {
    /// The state at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> LeaseState {
        match self.broken_at {
            Some(at) if now < at => LeaseState::Breaking,
            Some(_) => LeaseState::Broken,
            None if self.expires.is_some_and(|e| now >= e) => LeaseState::Expired,
            None => LeaseState::Leased,
        }
    }

    fn live(&self, now: DateTime<Utc>) -> bool {
        matches!(self.state(now), LeaseState::Leased | LeaseState::Breaking)
    }
}

/// Whether a write or delete carrying `lease_id` may touch a path with `lease`.
pub fn check_write(
    lease: Option<&Lease>,
    lease_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), SimError> {
    match (lease.filter(|l| l.live(now)), lease_id) {
        (None, None) => Ok(()),
        (Some(_), None) => Err(SimError::new(
            412,
            "LeaseIdMissing",
            "There is currently a lease on the resource and no lease ID was specified in the request.",
        )),
        (Some(l), Some(id)) if l.id.eq_ignore_ascii_case(id.trim()) => Ok(()),
        (Some(_), Some(_)) => Err(SimError::new(
            412,
            "LeaseIdMismatchWithBlobOperation",
            "The lease ID specified did not match the lease ID for the resource.",
        )),
        (None, Some(_)) if lease.is_some_and(|l| l.state(now) == LeaseState::Expired) => {
            Err(SimError::new(
                412,
                "LeaseLost",
                "A lease ID was specified, but the lease for the resource has expired.",
            ))
        }
        (None, Some(_)) => Err(SimError::new(
            412,
            "LeaseNotPresentWithBlobOperation",
            "There is currently no lease on the resource.",
        )),
    }
}

/// Applies a lease request to a path's lease (`slot`), at `now`.
pub fn apply(
    slot: &mut Option<Lease>,
    req: &LeaseRequest,
    now: DateTime<Utc>,
) -> Result<LeaseAnswer, SimError> {
    let state = slot.as_ref().map(|l| l.state(now));
    let given = req
        .lease_id
        .as_deref()
        .map(|v| lease_id_of(v, "x-ms-lease-id"))
        .transpose()?;
    let proposed = req
        .proposed_id
        .as_deref()
        .map(|v| lease_id_of(v, "x-ms-proposed-lease-id"))
        .transpose()?;
    let same = |l: &Lease, id: &str| l.id.eq_ignore_ascii_case(id);
    let not_present = || {
        conflict(
            "LeaseNotPresentWithLeaseOperation",
            "There is currently no lease on the resource.",
        )
    };
    let mismatch = || {
        conflict(
            "LeaseIdMismatchWithLeaseOperation",
            "The lease ID specified did not match the lease ID for the resource with the specified lease operation.",
        )
    };
    match req.action.as_str() {
        "acquire" => {
            let duration: i64 = req
                .duration
                .as_deref()
                .ok_or_else(|| missing_header("x-ms-lease-duration"))?
                .trim()
                .parse()
                .map_err(|_| bad_header("x-ms-lease-duration"))?;
            if duration != -1 && !(15..=60).contains(&duration) {
                return Err(bad_header("x-ms-lease-duration"));
            }
            if let Some(l) = slot.as_ref() {
                match l.state(now) {
                    LeaseState::Leased if proposed.as_deref().is_some_and(|p| same(l, p)) => {}
                    LeaseState::Leased => {
                        return Err(conflict(
                            "LeaseAlreadyPresent",
                            "There is already a lease present.",
                        ))
                    }
                    LeaseState::Breaking => {
                        return Err(conflict(
                            "LeaseIsBreakingAndCannotBeAcquired",
                            "There is already a breaking lease.",
                        ))
                    }
                    LeaseState::Expired | LeaseState::Broken => {}
                }
            }
            let id = proposed.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            *slot = Some(Lease {
                id: id.clone(),
                expires: (duration > 0).then(|| now + Duration::seconds(duration)),
                duration,
                broken_at: None,
            });
            Ok(LeaseAnswer {
                status: 201,
                lease_id: Some(id),
                lease_time: None,
            })
        }
        "renew" => {
            let id = given.ok_or_else(|| missing_header("x-ms-lease-id"))?;
            let l = slot.as_mut().ok_or_else(not_present)?;
            if !same(l, &id) {
                return Err(mismatch());
            }
            match state {
                Some(LeaseState::Leased | LeaseState::Expired) => {
                    l.expires = (l.duration > 0).then(|| now + Duration::seconds(l.duration));
                    Ok(LeaseAnswer {
                        status: 200,
                        lease_id: Some(l.id.clone()),
                        lease_time: None,
                    })
                }
                _ => Err(conflict(
                    "LeaseIsBrokenAndCannotBeRenewed",
                    "The lease ID matched, but the lease has been broken explicitly and cannot be renewed.",
                )),
            }
        }
        "change" => {
            let id = given.ok_or_else(|| missing_header("x-ms-lease-id"))?;
            let new = proposed.ok_or_else(|| missing_header("x-ms-proposed-lease-id"))?;
            let l = slot.as_mut().ok_or_else(not_present)?;
            match state {
                Some(LeaseState::Leased) if same(l, &id) || same(l, &new) => {
                    l.id = new.clone();
                    Ok(LeaseAnswer {
                        status: 200,
                        lease_id: Some(new),
                        lease_time: None,
                    })
                }
                Some(LeaseState::Leased) => Err(mismatch()),
                Some(LeaseState::Breaking) => Err(conflict(
                    "LeaseIsBreakingAndCannotBeChanged",
                    "The lease ID matched, but the lease is currently in breaking state and cannot be changed.",
                )),
                _ => Err(not_present()),
            }
        }
        "release" => {
            let id = given.ok_or_else(|| missing_header("x-ms-lease-id"))?;
            let l = slot.as_ref().ok_or_else(not_present)?;
            if !same(l, &id) {
                return Err(mismatch());
            }
            *slot = None;
            Ok(LeaseAnswer {
                status: 200,
                lease_id: None,
                lease_time: None,
            })
        }
        "break" => {
            let period: Option<i64> = req
                .break_period
                .as_deref()
                .map(|p| p.trim().parse().map_err(|_| bad_header("x-ms-lease-break-period")))
                .transpose()?;
            if period.is_some_and(|p| !(0..=60).contains(&p)) {
                return Err(bad_header("x-ms-lease-break-period"));
            }
            let l = slot.as_mut().ok_or_else(not_present)?;
            let left = match state {
                Some(LeaseState::Leased) => {
                    let remaining = l.expires.map(|e| (e - now).num_seconds().max(0));
                    let wait = match (period, remaining) {
                        (Some(p), Some(r)) => p.min(r),
                        (Some(p), None) => p,
                        (None, Some(r)) => r,
                        (None, None) => 0,
                    };
                    l.broken_at = Some(now + Duration::seconds(wait));
                    wait
                }
                Some(LeaseState::Breaking) => {
                    let at = l.broken_at.unwrap_or(now);
                    match period {
                        Some(p) if now + Duration::seconds(p) < at => {
                            l.broken_at = Some(now + Duration::seconds(p));
                            p
                        }
                        _ => (at - now).num_seconds().max(0),
                    }
                }
                Some(LeaseState::Expired | LeaseState::Broken) => {
                    l.broken_at.get_or_insert(now);
                    0
                }
                None => return Err(not_present()),
            };
            Ok(LeaseAnswer {
                status: 202,
                lease_id: None,
                lease_time: Some(left),
            })
        }
        _ => Err(SimError::new(
            400,
            "InvalidHeaderValue",
            "The value for one of the HTTP headers is not in the correct format. (x-ms-lease-action)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(action: &str) -> LeaseRequest {
        LeaseRequest {
            action: action.into(),
            lease_id: None,
            proposed_id: None,
            duration: None,
            break_period: None,
        }
    }

    #[test]
    fn acquire_renew_change_release_break() {
        let now = Utc::now();
        let mut slot = None;
        let e = apply(&mut slot, &req("acquire"), now).unwrap_err();
        assert_eq!((e.status, e.code), (400, "MissingRequiredHeader"));
        let mut acquire = req("acquire");
        acquire.duration = Some("10".into());
        assert_eq!(
            apply(&mut slot, &acquire, now).unwrap_err().code,
            "InvalidHeaderValue"
        );
        acquire.duration = Some("15".into());
        let a = apply(&mut slot, &acquire, now).unwrap();
        assert_eq!(a.status, 201);
        let id = a.lease_id.unwrap();
        assert_eq!(
            apply(&mut slot, &acquire, now).unwrap_err().code,
            "LeaseAlreadyPresent"
        );
        assert_eq!(
            check_write(slot.as_ref(), None, now).unwrap_err().code,
            "LeaseIdMissing"
        );
        assert!(check_write(slot.as_ref(), Some(&id), now).is_ok());
        // Expired after 15 s: writers need no id, the holder can renew.
        let later = now + Duration::seconds(16);
        assert!(check_write(slot.as_ref(), None, later).is_ok());
        assert_eq!(
            check_write(slot.as_ref(), Some(&id), later)
                .unwrap_err()
                .code,
            "LeaseLost"
        );
        let mut renew = req("renew");
        renew.lease_id = Some(id.clone());
        assert_eq!(apply(&mut slot, &renew, later).unwrap().status, 200);
        let new = uuid::Uuid::new_v4().to_string();
        let mut change = req("change");
        change.lease_id = Some(id.clone());
        change.proposed_id = Some(new.clone());
        assert_eq!(
            apply(&mut slot, &change, later)
                .unwrap()
                .lease_id
                .as_deref(),
            Some(new.as_str())
        );
        let mut brk = req("break");
        brk.break_period = Some("5".into());
        assert_eq!(apply(&mut slot, &brk, later).unwrap().lease_time, Some(5));
        assert_eq!(
            apply(&mut slot, &acquire, later).unwrap_err().code,
            "LeaseIsBreakingAndCannotBeAcquired"
        );
        let broken = later + Duration::seconds(6);
        assert!(apply(&mut slot, &acquire, broken).is_ok());
        let mut release = req("release");
        release.lease_id = Some(new);
        assert_eq!(
            apply(&mut slot, &release, broken).unwrap_err().code,
            "LeaseIdMismatchWithLeaseOperation"
        );
    }
}
