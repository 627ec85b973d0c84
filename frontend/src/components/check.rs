//! The Check tab: pick a lab, point the checker at the student's program (a `.py` of the data
//! directory, which the bridge runs traced on the lab's port) or at a server that runs
//! already (`host:port`), and press Check. The handout's steps are listed at once and light
//! up as the bridge reports them (`check_step` events); a failing step says expected against
//! got and links to what it did: its events in the timeline, in the sequence diagram, and the
//! student's line that made the last call.

use std::rc::Rc;

use shared::{CheckInfo, Command, EventKind, FileInfo};
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::format;
use crate::state::SharedLog;

/// Where a failing step's "show" button takes the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    Timeline,
    Sequence,
    Line,
}

#[derive(Properties, PartialEq)]
pub struct Props {
    pub checks: Option<Rc<Vec<CheckInfo>>>,
    /// The data directory's files (its `.py` files can be checked).
    pub files: Vec<FileInfo>,
    pub log: SharedLog,
    pub version: u64,
    pub enabled: bool,
    /// A check of this page's runs.
    pub running: bool,
    /// Asks the bridge for its checks.
    pub on_list: Callback<()>,
    pub on_run: Callback<Command>,
    /// Shows an event (the step's) in a view.
    pub on_show: Callback<(Rc<shared::Event>, Show)>,
}

/// One step as the events tell it: what it does, and its verdict, explanation and the seq of
/// its `check_step` event once it ended.
struct Step {
    what: String,
    ended: Option<(String, String, u64)>,
}

#[function_component]
pub fn Check(props: &Props) -> Html {
    let lab = use_state(String::new);
    let program = use_state(String::new);
    let target = use_state(String::new);
    let on_server = use_state(|| false);
    {
        let (on_list, listed) = (props.on_list.clone(), props.checks.is_some());
        use_effect_with(props.enabled, move |enabled| {
            if *enabled && !listed {
                on_list.emit(());
            }
        });
    }
    let checks = props.checks.clone().unwrap_or_default();
    let chosen = checks
        .iter()
        .find(|c| c.lab == *lab)
        .or(checks.first())
        .cloned();
    let programs: Vec<&str> = props
        .files
        .iter()
        .map(|f| f.name.as_str())
        .filter(|n| n.ends_with(".py"))
        .collect();
    let picked_program = if programs.contains(&program.as_str()) {
        (*program).clone()
    } else {
        programs.first().map(|p| p.to_string()).unwrap_or_default()
    };
    let client_lab = chosen.as_ref().is_some_and(|c| c.program == "client");
    let to_server = *on_server && !client_lab;
    let address = match (&chosen, target.is_empty()) {
        (Some(c), true) => format!("127.0.0.1:{}", c.port),
        _ => (*target).clone(),
    };
    let on_lab = {
        let lab = lab.clone();
        Callback::from(move |e: yew::Event| {
            lab.set(e.target_unchecked_into::<HtmlSelectElement>().value())
        })
    };
    let on_program = {
        let program = program.clone();
        Callback::from(move |e: yew::Event| {
            program.set(e.target_unchecked_into::<HtmlSelectElement>().value())
        })
    };
    let on_target = {
        let target = target.clone();
        Callback::from(move |e: InputEvent| {
            target.set(e.target_unchecked_into::<HtmlInputElement>().value())
        })
    };
    let mode = |server: bool| {
        let on_server = on_server.clone();
        Callback::from(move |_: yew::Event| on_server.set(server))
    };
    let on_check = {
        let (on_run, chosen, address, file) = (
            props.on_run.clone(),
            chosen.clone(),
            address.clone(),
            picked_program.clone(),
        );
        Callback::from(move |_: MouseEvent| {
            if let Some(check) = &chosen {
                on_run.emit(Command::CheckRun {
                    lab: check.lab.clone(),
                    target: to_server.then(|| address.clone()),
                    program: (!to_server).then(|| file.clone()),
                    args: Vec::new(),
                });
            }
        })
    };
    let ready = props.enabled
        && !props.running
        && chosen.is_some()
        && (to_server || !picked_program.is_empty());
    html! {
        <div class="check-panel" id="check-panel">
            <h2>{ "Check my lab" }</h2>
            <p class="muted">{ "The handout's steps, run with real sockets against your program: each one passes or says what was expected and what came." }</p>
            <label class="wide">{ "Lab " }
                <select id="check-lab" onchange={on_lab}>
                    { for checks.iter().map(|c| html! {
                        <option value={c.lab.clone()} selected={chosen.as_ref().is_some_and(|x| x.lab == c.lab)}>
                            { format!("{} (:{})", c.title, c.port) }
                        </option>
                    }) }
                </select>
            </label>
            if let Some(c) = &chosen { <p class="muted" id="check-about">{ c.about.clone() }</p> }
            <div class="check-what">
                <label><input type="radio" name="check-mode" id="check-mode-program" checked={!to_server} onchange={mode(false)} />
                    { "my program " }</label>
                <select id="check-program" onchange={on_program} disabled={to_server}>
                    if programs.is_empty() { <option value="">{ "no .py files yet (Programs tab)" }</option> }
                    { for programs.iter().map(|p| html! {
                        <option value={p.to_string()} selected={*p == picked_program}>{ p.to_string() }</option>
                    }) }
                </select>
                <label><input type="radio" name="check-mode" id="check-mode-target" checked={to_server} disabled={client_lab} onchange={mode(true)} />
                    { "a server running at " }</label>
                <input id="check-target" type="text" value={address} oninput={on_target} disabled={!to_server} />
                <button type="button" class="primary" id="check-run" onclick={on_check} disabled={!ready}>
                    { if props.running { "Checking…" } else { "Check" } }</button>
            </div>
            { steps_view(props) }
        </div>
    }
}

/// The latest check's steps, as its events tell them.
fn steps_view(props: &Props) -> Html {
    let log = props.log.borrow();
    let Some(start) = log.check.filter(|i| *i < log.events.len()) else {
        return html! {};
    };
    let EventKind::CheckStarted { title, steps, .. } = &log.events[start].kind else {
        return html! {};
    };
    let mut shown: Vec<Step> = steps
        .iter()
        .map(|what| Step {
            what: what.clone(),
            ended: None,
        })
        .collect();
    for e in &log.events[start + 1..] {
        match &e.kind {
            EventKind::CheckStarted { .. } => break,
            EventKind::CheckStep {
                index,
                verdict,
                explanation,
            } => {
                if let Some(step) = shown.get_mut(*index as usize) {
                    step.ended = Some((verdict.clone(), explanation.clone(), e.seq));
                }
            }
            _ => {}
        }
    }
    let passed = shown
        .iter()
        .filter(|s| s.ended.as_ref().is_some_and(|v| v.0 == "passed"))
        .count();
    let failed = shown
        .iter()
        .position(|s| s.ended.as_ref().is_some_and(|v| v.0 == "failed"));
    let done = shown.iter().all(|s| s.ended.is_some());
    let summary = match (failed, done) {
        (Some(i), _) => format!(
            "Step {} failed: {passed} of {} steps passed.",
            i + 1,
            shown.len()
        ),
        (None, true) => format!("Passed: all {} steps.", shown.len()),
        (None, false) => format!("Running: {passed} of {} steps passed so far…", shown.len()),
    };
    let class = match (failed, done) {
        (Some(_), _) => "bad",
        (None, true) => "ok",
        (None, false) => "live",
    };
    // The step that runs now: the first without a verdict.
    let running = shown.iter().position(|s| s.ended.is_none());
    let mut after = log.events[start].seq;
    let items = shown.iter().enumerate().map(|(i, step)| {
        let (verdict, mark) = match (&step.ended, running == Some(i)) {
            (Some((v, _, _)), _) if v == "passed" => ("passed", "✓"),
            (Some((v, _, _)), _) if v == "failed" => ("failed", "✗"),
            (Some(_), _) => ("skipped", "–"),
            (None, true) => ("running", "…"),
            (None, false) => ("pending", "·"),
        };
        let links = match &step.ended {
            Some((v, why, seq)) if v == "failed" => {
                let (step_event, line_event) = evidence(&log.events, after, *seq);
                let show = |event: Option<Rc<shared::Event>>, to: Show, id: &'static str, text: String| {
                    event.map(|event| {
                        let on_show = props.on_show.clone();
                        html! { <button type="button" class="small" id={id}
                                        onclick={Callback::from(move |_: MouseEvent| on_show.emit((event.clone(), to)))}>{ text }</button> }
                    })
                };
                let line = line_event.as_ref().and_then(|e| e.at.as_ref().map(|at| at.line));
                html! {
                    <>
                        <pre class="why" id="check-why">{ why.clone() }</pre>
                        <div class="check-links">
                            { show(step_event.clone(), Show::Timeline, "check-show-timeline", "Show in the timeline".into()) }
                            { show(step_event, Show::Sequence, "check-show-sequence", "Show in the sequence diagram".into()) }
                            { show(line_event, Show::Line, "check-show-line", format!("Your line {}", line.unwrap_or(0))) }
                        </div>
                    </>
                }
            }
            _ => html! {},
        };
        if let Some((_, _, seq)) = &step.ended {
            after = *seq;
        }
        html! {
            <li class={format::classes(&["step", verdict])} data-verdict={verdict}>
                <span class="mark" aria-hidden="true">{ mark }</span>
                <span class="what">{ format!("{}. {}", i + 1, step.what) }</span>
                { links }
            </li>
        }
    });
    html! {
        <section class="check-run" aria-label="Check results">
            <h3>{ title.clone() }</h3>
            <p class={format::classes(&["check-summary", class])} id="check-summary" role="status">{ summary }</p>
            <ol class="check-steps" id="check-steps">{ for items }</ol>
        </section>
    }
}

/// What a step that ended at `seq` (the one before it at `after`) did: what its client got or
/// sent last (else its last socket event, else the last before it), and the student's line:
/// the traced program's first send after the step began (its reply), else its last call
/// there, else its last call before. A traced program's calls reach the log a little after
/// they happen, so its events are looked for past the step's end too, up to the next check.
fn evidence(
    events: &[Rc<shared::Event>],
    after: u64,
    seq: u64,
) -> (Option<Rc<shared::Event>>, Option<Rc<shared::Event>>) {
    let data = |e: &&&Rc<shared::Event>| {
        matches!(
            e.kind,
            EventKind::Send { .. }
                | EventKind::Recv { .. }
                | EventKind::SendTo { .. }
                | EventKind::RecvFrom { .. }
        )
    };
    let sockets: Vec<&Rc<shared::Event>> = events
        .iter()
        .filter(|e| e.endpoint != 0 && e.seq < seq)
        .collect();
    let during: Vec<&Rc<shared::Event>> =
        sockets.iter().copied().filter(|e| e.seq > after).collect();
    let step = during
        .iter()
        .rev()
        .find(data)
        .or(during.last())
        .or(sockets.last())
        .map(|e| Rc::clone(e));
    let later: Vec<&Rc<shared::Event>> = events
        .iter()
        .skip_while(|e| e.seq <= after)
        .take_while(|e| !matches!(e.kind, EventKind::CheckStarted { .. }))
        .filter(|e| e.at.is_some())
        .collect();
    let line = later
        .iter()
        .find(|e| matches!(e.kind, EventKind::Send { .. } | EventKind::SendTo { .. }))
        .or(later.last())
        .copied()
        .or_else(|| sockets.iter().rev().find(|e| e.at.is_some()).copied())
        .map(Rc::clone);
    (step, line)
}
