//! The person's own programs from the page: saving the editor's text as a `.py` file, reading
//! one back into the editor, running it traced, typing into its `input()`, and fetching a
//! program's source for the Source tab.

use shared::{Command, EndpointId, Outcome, ReplyData};

use super::use_bridge::Bridge;
use crate::state::Action;

impl Bridge {
    /// Saves `source` as `file` in the data directory (the file list follows); whether it
    /// worked (a failure becomes a notice).
    pub async fn save_program(&self, file: &str, source: &str) -> bool {
        let command = Command::ProgramSave {
            file: file.to_string(),
            source: source.to_string(),
        };
        match self.run_for(&format!("Save {file}"), command).await {
            Some(ReplyData::Files { files }) => {
                self.dispatcher().dispatch(Action::Files(files));
                true
            }
            Some(_) => true,
            None => false,
        }
    }

    /// A text file of the data directory, for the editor.
    pub async fn read_file(&self, file: &str) -> Option<String> {
        let command = Command::FileRead {
            file: file.to_string(),
        };
        match self.run_for(&format!("Open {file}"), command).await {
            Some(ReplyData::Program { code, .. }) => Some(code),
            _ => None,
        }
    }

    /// Runs `file` with `args` (split at spaces), having saved `source` as it first when it is
    /// given (the editor's program; a command has none); the new program is selected.
    pub async fn run_program(&self, file: &str, source: Option<&str>, args: &str) {
        if let Some(source) = source {
            if !self.save_program(file, source).await {
                return;
            }
        }
        let command = Command::ProgramRun {
            file: file.to_string(),
            args: args.split_whitespace().map(str::to_string).collect(),
        };
        self.run(&format!("Run {file}"), command).await;
    }

    /// Types `text` and a newline into a running program's stdin.
    pub async fn program_input(&self, program: EndpointId, text: &str) {
        let command = Command::ProgramInput {
            program,
            text: format!("{text}\n"),
        };
        self.run("Type into the program", command).await;
    }

    /// Fetches a program's source into the state (for the Source tab).
    pub async fn program_source(&self, program: EndpointId) {
        if let Outcome::Ok(ReplyData::Program { file, code }) =
            self.request(Command::ProgramSource { program }).await
        {
            self.dispatcher().dispatch(Action::Source {
                program,
                file,
                code,
            });
        }
    }
}
