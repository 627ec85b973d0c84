//! What a check found, for people and for graders: the terminal's table (a mark per step and,
//! under a failed one, why), and the JSON that Gradescope's autograder reads as
//! `results.json` (a score, and one test per step with its status and output).

use super::run::{StepResult, Verdict};
use super::scenario::Check;

/// A check's outcome for one program.
pub struct Report<'a> {
    pub check: &'a Check,
    /// What was checked: `python3 server.py` or `127.0.0.1:12000`.
    pub subject: String,
    pub steps: Vec<StepResult>,
}

impl Report<'_> {
    /// Steps passed, and steps that count (skipped ones do not).
    pub fn score(&self) -> (usize, usize) {
        let passed = self
            .steps
            .iter()
            .filter(|s| s.verdict == Verdict::Passed)
            .count();
        let counted = self
            .steps
            .iter()
            .filter(|s| !matches!(&s.verdict, Verdict::Skipped(why) if why.starts_with("skipped")))
            .count();
        (passed, counted)
    }

    pub fn passed(&self) -> bool {
        let (passed, counted) = self.score();
        passed == counted
    }

    /// The table for a terminal.
    pub fn text(&self) -> String {
        let mut out = format!(
            "Check: {} ({})\nOf: {}\n{}\n\n",
            self.check.title, self.check.lab, self.subject, self.check.about
        );
        for (i, step) in self.steps.iter().enumerate() {
            let mark = match step.verdict {
                Verdict::Passed => "PASS",
                Verdict::Failed(_) => "FAIL",
                Verdict::Skipped(_) => "  - ",
            };
            out.push_str(&format!("{mark} {:>2}. {}\n", i + 1, step.what));
            match &step.verdict {
                Verdict::Failed(why) | Verdict::Skipped(why) if !why.is_empty() => {
                    if matches!(step.verdict, Verdict::Skipped(_)) && why.starts_with("not run") {
                        continue;
                    }
                    for line in why.lines() {
                        out.push_str(&format!("         {line}\n"));
                    }
                }
                _ => {}
            }
        }
        let (passed, counted) = self.score();
        out.push_str(&format!(
            "\n{}: {passed} of {counted} steps passed\n",
            if self.passed() { "PASSED" } else { "FAILED" }
        ));
        out
    }

    /// Gradescope's `results.json`: one test per step, a point each.
    pub fn gradescope(&self) -> serde_json::Value {
        let (passed, counted) = self.score();
        let tests: Vec<serde_json::Value> = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let (status, score, output) = match &step.verdict {
                    Verdict::Passed => ("passed", 1, String::new()),
                    Verdict::Failed(why) => ("failed", 0, why.clone()),
                    Verdict::Skipped(why) => ("failed", 0, why.clone()),
                };
                serde_json::json!({
                    "name": format!("{}. {}", i + 1, step.what),
                    "score": score,
                    "max_score": 1,
                    "status": status,
                    "output": output,
                })
            })
            .collect();
        serde_json::json!({
            "score": passed,
            "max_score": counted,
            "output": format!("{}: {}", self.check.title, self.subject),
            "tests": tests,
        })
    }
}
