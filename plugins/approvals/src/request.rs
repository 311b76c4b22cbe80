//! A request's state and the rules that move it: who decides, how a branch's rule
//! turns decisions into an outcome, when a step is done, and what the request's
//! history records. Pure: the calls to the host are in `flow.rs`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{Process, Rule, Timeout};

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for decisions.
    Pending,
    /// Every step approved.
    Approved,
    /// A step rejected.
    Rejected,
    /// The submitter took it back.
    Recalled,
}

impl Status {
    /// Its name (as in URLs and events).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::Recalled => "recalled",
        }
    }
}

/// Where a branch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Waiting.
    Pending,
    /// Its rule is met.
    Approved,
    /// Its rule can no longer be met.
    Rejected,
}

/// Someone a branch waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignee {
    /// The user who decides.
    pub user: String,
    /// The approver they stand in for (delegation, escalation, reassignment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
}

/// A decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Who decided (`system` for a timeout's automatic decision).
    pub user: String,
    /// For whom, when standing in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    /// Approve (`true`) or reject.
    pub approve: bool,
    /// Their comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// When.
    pub at: String,
}

/// A branch of the current step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchState {
    /// Its name, if the process gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its rule.
    pub rule: Rule,
    /// Approvals needed under `quorum`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<u32>,
    /// Who decides.
    pub assignees: Vec<Assignee>,
    /// Decisions so far.
    pub decisions: Vec<Decision>,
    /// Where it stands.
    pub outcome: Outcome,
    /// Its deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Timeout>,
}

impl BranchState {
    /// Whether `user` has decided.
    pub fn decided(&self, user: &str) -> bool {
        self.decisions.iter().any(|d| d.user == user)
    }

    /// Assignees who have not decided.
    pub fn waiting(&self) -> impl Iterator<Item = &Assignee> {
        self.assignees.iter().filter(|a| !self.decided(&a.user))
    }

    /// The outcome the decisions give under the rule.
    pub fn evaluate(&self) -> Outcome {
        let approvals = self.decisions.iter().filter(|d| d.approve).count();
        let rejections = self.decisions.len() - approvals;
        let n = self.assignees.len().max(1);
        match self.rule {
            Rule::Any => match self.decisions.first() {
                Some(d) if d.approve => Outcome::Approved,
                Some(_) => Outcome::Rejected,
                None => Outcome::Pending,
            },
            Rule::All if rejections > 0 => Outcome::Rejected,
            Rule::All if approvals >= n => Outcome::Approved,
            Rule::All => Outcome::Pending,
            Rule::Quorum => {
                let m = self.quorum.unwrap_or(1) as usize;
                if approvals >= m {
                    Outcome::Approved
                } else if n.saturating_sub(rejections) < m {
                    Outcome::Rejected
                } else {
                    Outcome::Pending
                }
            }
        }
    }
}

/// One line of a request's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// When.
    pub at: String,
    /// `submitted`, `step_started`, `step_skipped`, `approved`, `rejected`, `delegated`,
    /// `reassigned`, `reminded`, `escalated`, `recalled`, `finished`.
    pub kind: String,
    /// Who (a user id, or `system`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    /// The branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<usize>,
    /// The rest (comment, from/to, outcome…).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

/// An approval request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Id.
    pub id: String,
    /// The process, as it was when the request was submitted.
    pub process: Process,
    /// The record's object.
    pub object: String,
    /// The record.
    pub record_id: String,
    /// Who submitted it.
    pub submitter: String,
    /// The record's owner at submission.
    pub owner_id: String,
    /// The record's fields (and `owner_id`) at submission: step criteria and
    /// field-named approvers read them (the record stays locked while pending).
    pub record: serde_json::Map<String, Value>,
    /// The submitter's comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Where it stands.
    pub status: Status,
    /// The current step (index into the process's steps).
    pub step: usize,
    /// Bumped whenever the waiting set changes (a step starts, an escalation): timers
    /// and notifications of an older round are stale.
    pub round: u32,
    /// The current step's branches.
    pub branches: Vec<BranchState>,
    /// Everyone the request has ever been assigned to (they may read it).
    #[serde(default)]
    pub participants: Vec<String>,
    /// The history.
    pub timeline: Vec<Entry>,
    /// Submitted.
    pub submitted_at: String,
    /// Finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

impl Request {
    /// Remember the current branches' assignees as participants.
    pub fn note_participants(&mut self) {
        for b in &self.branches {
            for a in &b.assignees {
                if !self.participants.contains(&a.user) {
                    self.participants.push(a.user.clone());
                }
            }
        }
    }

    /// Every user the request now waits for (undecided assignees of pending branches).
    pub fn waiting_for(&self) -> Vec<String> {
        if self.status != Status::Pending {
            return Vec::new();
        }
        let mut users: Vec<String> = self
            .branches
            .iter()
            .filter(|b| b.outcome == Outcome::Pending)
            .flat_map(|b| b.waiting().map(|a| a.user.clone()))
            .collect();
        users.sort();
        users.dedup();
        users
    }

    /// The pending branches in which `user` may decide now.
    pub fn branches_of(&self, user: &str) -> Vec<usize> {
        self.branches
            .iter()
            .enumerate()
            .filter(|(_, b)| b.outcome == Outcome::Pending && b.waiting().any(|a| a.user == user))
            .map(|(i, _)| i)
            .collect()
    }

    /// The current step's outcome: rejected as soon as a branch is, approved when all are.
    pub fn step_outcome(&self) -> Outcome {
        if self.branches.iter().any(|b| b.outcome == Outcome::Rejected) {
            Outcome::Rejected
        } else if self.branches.iter().all(|b| b.outcome == Outcome::Approved) {
            Outcome::Approved
        } else {
            Outcome::Pending
        }
    }

    /// Add to the history.
    pub fn log(
        &mut self,
        at: &str,
        kind: &str,
        user: Option<&str>,
        step: Option<usize>,
        branch: Option<usize>,
        detail: Value,
    ) {
        self.timeline.push(Entry {
            at: at.to_string(),
            kind: kind.to_string(),
            user: user.map(str::to_string),
            step,
            branch,
            detail,
        });
    }

    /// Record `user`'s decision in every pending branch where they are awaited.
    /// Returns the branches decided in, or `None` if they are awaited nowhere.
    pub fn decide(&mut self, user: &str, approve: bool, comment: Option<&str>, at: &str) -> Option<Vec<usize>> {
        let branches = self.branches_of(user);
        if branches.is_empty() {
            return None;
        }
        for &i in &branches {
            let b = &mut self.branches[i];
            let on_behalf_of = b
                .assignees
                .iter()
                .find(|a| a.user == user)
                .and_then(|a| a.on_behalf_of.clone());
            b.decisions.push(Decision {
                user: user.to_string(),
                on_behalf_of: on_behalf_of.clone(),
                approve,
                comment: comment.map(str::to_string),
                at: at.to_string(),
            });
            b.outcome = b.evaluate();
            let kind = if approve { "approved" } else { "rejected" };
            let detail = serde_json::json!({ "comment": comment, "on_behalf_of": on_behalf_of });
            let step = self.step;
            self.log(at, kind, Some(user), Some(step), Some(i), detail);
        }
        Some(branches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn branch(rule: Rule, quorum: Option<u32>, users: &[&str]) -> BranchState {
        BranchState {
            name: None,
            rule,
            quorum,
            assignees: users
                .iter()
                .map(|u| Assignee {
                    user: u.to_string(),
                    on_behalf_of: None,
                })
                .collect(),
            decisions: Vec::new(),
            outcome: Outcome::Pending,
            timeout: None,
        }
    }

    fn decide(b: &mut BranchState, user: &str, approve: bool) -> Outcome {
        b.decisions.push(Decision {
            user: user.into(),
            on_behalf_of: None,
            approve,
            comment: None,
            at: String::new(),
        });
        b.evaluate()
    }

    #[test]
    fn rules_turn_decisions_into_outcomes() {
        let mut any = branch(Rule::Any, None, &["a", "b"]);
        assert_eq!(decide(&mut any, "b", false), Outcome::Rejected);

        let mut all = branch(Rule::All, None, &["a", "b"]);
        assert_eq!(decide(&mut all, "a", true), Outcome::Pending);
        assert_eq!(decide(&mut all, "b", true), Outcome::Approved);
        let mut all = branch(Rule::All, None, &["a", "b"]);
        assert_eq!(decide(&mut all, "a", false), Outcome::Rejected);

        // 2 of 3: one rejection leaves it reachable, two do not.
        let mut q = branch(Rule::Quorum, Some(2), &["a", "b", "c"]);
        assert_eq!(decide(&mut q, "a", false), Outcome::Pending);
        assert_eq!(decide(&mut q, "b", true), Outcome::Pending);
        assert_eq!(decide(&mut q, "c", true), Outcome::Approved);
        let mut q = branch(Rule::Quorum, Some(2), &["a", "b", "c"]);
        decide(&mut q, "a", false);
        assert_eq!(decide(&mut q, "b", false), Outcome::Rejected);
    }
}
