//! The diagnostics panel: the probe to run, its parameters, and the verdicts so far.

use tether_proto::Scope;
use tether_proto::diag::{DiagReport, ProbeKind, Verdict};

use super::{Action, Model, not_asked};
use crate::render;

/// The diagnostics side panel: the probe to run, its parameters, and the verdicts so far.
#[derive(Debug, Clone)]
pub struct DiagPanel {
    /// The probe the Run button runs.
    pub selected: ProbeKind,
    /// Its parameters, as `key=value` words.
    pub params: String,
    /// Why the parameters were not accepted.
    pub param_error: Option<String>,
    /// Requests under way (a probe, or the health check).
    pub running: usize,
    /// Results, newest first.
    pub results: Vec<DiagReport>,
    /// Why the last request failed (e.g. `diagnostics` not granted).
    pub error: Option<String>,
    /// The last health check's counts ("1 problems, 2 warnings, ... 12 ok").
    pub summary: Option<String>,
}

impl Default for DiagPanel {
    fn default() -> Self {
        DiagPanel {
            selected: ProbeKind::Uptime,
            params: String::new(),
            param_error: None,
            running: 0,
            results: Vec::new(),
            error: None,
            summary: None,
        }
    }
}

/// A verdict's colour, as RGB: green, amber, red, grey.
pub fn verdict_rgb(v: Verdict) -> [u8; 3] {
    match v {
        Verdict::Ok => [46, 125, 50],
        Verdict::Warning => [230, 145, 0],
        Verdict::Problem | Verdict::Failed | Verdict::TimedOut => [198, 40, 40],
        Verdict::NotAvailable => [110, 110, 110],
    }
}

impl Model {
    /// Picks the probe the Run button runs.
    pub fn select_probe(&mut self, kind: ProbeKind) {
        if self.diag.selected != kind {
            self.diag.selected = kind;
            self.diag.params.clear();
            self.diag.param_error = None;
            self.say(format!("probe selected: {}", kind.name()));
        }
    }

    /// "Run": checks the parameters here first, so a bad one never leaves this machine.
    pub fn run_probe(&mut self) -> Option<Action> {
        self.granted()?;
        if !self.asked().contains(Scope::Diagnostics) {
            self.diag.error = Some(not_asked(Scope::Diagnostics));
            return None;
        }
        let kind = self.diag.selected;
        let words: Vec<&str> = self.diag.params.split_whitespace().collect();
        match crate::diag::parse_probe(kind, &words) {
            Ok(p) => {
                self.diag.param_error = None;
                self.diag.running += 1;
                self.say(format!("probe {}: running", kind.name()));
                Some(Action::RunProbe(p))
            }
            Err(e) => {
                self.say(format!("probe {}: bad parameters: {e}", kind.name()));
                self.diag.param_error = Some(e.to_string());
                None
            }
        }
    }

    /// "Health check": every probe that needs no parameters.
    pub fn health_check(&mut self) -> Option<Action> {
        self.granted()?;
        if !self.asked().contains(Scope::Diagnostics) {
            self.diag.error = Some(not_asked(Scope::Diagnostics));
            return None;
        }
        self.diag.running += 1;
        self.say("health check: running".into());
        Some(Action::HealthCheck)
    }

    fn report(&mut self, r: DiagReport) {
        self.say(format!(
            "probe {}: {} in {} ms: {}",
            r.probe.kind().name(),
            r.verdict.to_string().to_uppercase(),
            r.elapsed_ms,
            r.reason
        ));
        self.diag.results.insert(0, r);
    }

    /// One probe's report, or why it did not run.
    pub(super) fn probe_done(&mut self, kind: ProbeKind, result: Result<Box<DiagReport>, String>) {
        self.diag.running = self.diag.running.saturating_sub(1);
        match result {
            Ok(r) => self.report(*r),
            Err(e) => {
                self.say(format!("probe {}: failed: {e}", kind.name()));
                self.diag.error = Some(e);
            }
        }
    }

    /// The health check's reports, or why it did not run.
    pub(super) fn health_check_done(&mut self, result: Result<Vec<DiagReport>, String>) {
        self.diag.running = self.diag.running.saturating_sub(1);
        match result {
            // Shown problems first: insert the least urgent first.
            Ok(reports) => {
                let summary = format!("Health check: {}", render::health_counts(&reports));
                self.say(summary.to_lowercase());
                self.diag.summary = Some(summary);
                reports.into_iter().rev().for_each(|r| self.report(r));
            }
            Err(e) => {
                self.say(format!("health check: failed: {e}"));
                self.diag.error = Some(e);
            }
        }
    }
}
