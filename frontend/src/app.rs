//! The root component: owns the state and the bridge connection, lays out the views, and turns
//! their callbacks into commands and actions.

use shared::{Command, EndpointSpec};
use yew::prelude::*;

use crate::components::check::{self, Check};
use crate::components::compare::Compare;
use crate::components::composer::{Composer, SendTarget};
use crate::components::console::Console;
use crate::components::conversation::Conversation;
use crate::components::endpoint_list::{self, endpoint_list};
use crate::components::files::{self, files, FileSender};
use crate::components::header::{self, header};
use crate::components::lab_card::{self, lab_card};
use crate::components::new_endpoint::NewEndpoint;
use crate::components::notice::{self, notice_bar};
use crate::components::programs::Programs;
use crate::components::python::{save_text, Python};
use crate::components::replay::{self, replay_bar};
use crate::components::sequence;
use crate::components::source::Source;
use crate::components::timeline::Timeline;
use crate::components::trouble::Trouble;
use crate::hooks::{use_bridge, use_replay, use_slow_motion};
use crate::labs::PRESETS;
use crate::state::{Action, ConvKey, Events, Link, State};

/// How many events of one conversation are drawn at most.
const CONVERSATION_LIMIT: usize = 400;

/// What the middle panel shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tab {
    Conversation,
    Programs,
    Check,
    Source,
    Files,
    Compare,
    Python,
    Sequence,
}

#[function_component]
pub fn App() -> Html {
    let state = use_reducer(State::default);
    let bridge = use_bridge(state.dispatcher());
    let lecture = use_state(|| false);
    // In lecture mode one view may fill the screen: "all", "conversation", "sequence" or
    // "timeline".
    let focus = use_state(|| "all");
    let tab = use_state(|| Tab::Conversation);
    // What the sequence diagram draws: "lab" (since the last preset or Reset), "selected"
    // (the selected conversation) or "all"; kept while the page is open.
    let seq_scope = use_state(|| "lab".to_string());
    // Whether the sequence diagram draws the packets on the wire (when there are any).
    let seq_wire = use_state(|| true);
    // Whether the conversation shows its packets between the messages (off: the calls alone,
    // as a student's program sees them).
    let conv_wire = use_state(|| false);
    // The lab the last preset set up, shown as a card until closed, reset or replaced.
    let lab = use_state(|| None::<usize>);
    // The state of views that are plain functions (see their modules): the Labs menu, whether
    // Export takes the keys along (a recording is shared: they stay out unless asked for),
    // how many chat clients to add, the datagram size of a UDP file send.
    let labs_menu = use_node_ref();
    let export_secrets = use_state(|| false);
    let joiners = use_state(|| 3usize);
    let datagram = use_state(|| 1400usize);
    let slow = use_slow_motion(&bridge);
    let player = use_replay(&state);
    let (playing, speed) = (player.playing.clone(), player.speed.clone());
    let dark = use_state(prefers_dark);
    // A file opened into the Programs tab's editor: (file, text).
    let loaded = use_state(|| None::<std::rc::Rc<(String, String)>>);
    // A text file of the data directory shown in the Files tab: (file, text).
    let viewing = use_state(|| None::<std::rc::Rc<(String, String)>>);
    let run = bridge.runner();
    // Marks the first render, so benchmarks can read when the page became usable.
    use_effect_with((), |_| {
        if let Some(performance) = web_sys::window().and_then(|w| w.performance()) {
            let _ = performance.mark("sp-first-render");
        }
    });

    // While a recording is on screen, nothing reaches the bridge.
    {
        let bridge = bridge.clone();
        use_effect_with(state.replay.is_some(), move |on| bridge.set_replaying(*on));
    }
    // The file list follows the data directory: on connect, after every transfer, and each
    // time the Files tab is opened (a server's log grows without a transfer).
    {
        let bridge = bridge.clone();
        let connected = state.link == Link::Open;
        let files_tab = *tab == Tab::Files;
        use_effect_with(
            (connected, state.transfers, files_tab),
            move |(connected, _, _)| {
                if *connected {
                    yew::platform::spawn_local(async move { bridge.refresh_files().await });
                }
            },
        );
    }
    // The event picked (a check's failing step) comes into view in the sequence diagram.
    use_effect_with(
        (state.highlight, *tab == Tab::Sequence),
        |(highlight, shown)| {
            if highlight.is_some() && *shown {
                let found = web_sys::window()
                    .and_then(|w| w.document())
                    .and_then(|d| d.query_selector(sequence::SCROLL_TO).ok().flatten());
                if let Some(item) = found {
                    item.scroll_into_view();
                }
            }
        },
    );
    // The Python tab asks the bridge for the selected endpoint's program.
    {
        let bridge = bridge.clone();
        let wanted = (*tab == Tab::Python)
            .then_some(state.selected)
            .flatten()
            .and_then(|key| {
                let spec = state
                    .log
                    .borrow()
                    .specs
                    .get(&key.endpoint)
                    .map(|(s, _)| s.clone());
                spec.filter(|spec| !spec.is_programs())
                    .map(|spec| (key.endpoint, spec))
            });
        use_effect_with(wanted, move |wanted| {
            if let Some((endpoint, spec)) = wanted.clone() {
                yew::platform::spawn_local(async move { bridge.python(endpoint, spec).await });
            }
        });
    }
    // The Source tab asks the bridge for the selected program's script.
    let selected_program = state
        .selected
        .and_then(|key| state.log.borrow().program_of(key.endpoint));
    {
        let bridge = bridge.clone();
        let wanted = matches!(*tab, Tab::Source | Tab::Python)
            .then_some(selected_program)
            .flatten();
        use_effect_with(wanted, move |wanted| {
            if let Some(program) = *wanted {
                yew::platform::spawn_local(async move { bridge.program_source(program).await });
            }
        });
    }
    let on_open_program = {
        let (bridge, loaded) = (bridge.clone(), loaded.clone());
        Callback::from(move |file: String| {
            let (bridge, loaded) = (bridge.clone(), loaded.clone());
            yew::platform::spawn_local(async move {
                if let Some(code) = bridge.read_file(&file).await {
                    loaded.set(Some(std::rc::Rc::new((file, code))));
                }
            });
        })
    };
    let on_view = {
        let (bridge, viewing) = (bridge.clone(), viewing.clone());
        Callback::from(move |file: String| {
            let (bridge, viewing) = (bridge.clone(), viewing.clone());
            yew::platform::spawn_local(async move {
                if let Some(text) = bridge.read_file(&file).await {
                    viewing.set(Some(std::rc::Rc::new((file, text))));
                }
            });
        })
    };
    let on_close_view = {
        let viewing = viewing.clone();
        Callback::from(move |()| viewing.set(None))
    };
    let on_save_program = {
        let bridge = bridge.clone();
        Callback::from(move |(file, source): (String, String)| {
            let bridge = bridge.clone();
            yew::platform::spawn_local(async move {
                bridge.save_program(&file, &source).await;
            });
        })
    };
    let on_run_program = {
        let (bridge, tab) = (bridge.clone(), tab.clone());
        Callback::from(
            move |(file, source, args): (String, Option<String>, String)| {
                let bridge = bridge.clone();
                // The new program gets selected: show its console.
                tab.set(Tab::Conversation);
                yew::platform::spawn_local(async move {
                    bridge.run_program(&file, source.as_deref(), &args).await;
                });
            },
        )
    };
    let on_preset = {
        let (bridge, lab, dispatch) = (bridge.clone(), lab.clone(), state.dispatcher());
        Callback::from(move |index: usize| {
            let bridge = bridge.clone();
            let preset = &PRESETS[index];
            lab.set(Some(index));
            dispatch.dispatch(Action::LabStarted);
            let key = crate::token::random_fernet_key().unwrap_or_default();
            yew::platform::spawn_local(async move {
                let mut last = None;
                for command in preset.commands(&key) {
                    match bridge.run_for(preset.name, command).await {
                        None => return,
                        Some(shared::ReplyData::Endpoint(info)) => last = Some(info.id),
                        Some(_) => {}
                    }
                }
                if let Some((port, n, encrypted)) = preset.chat_clients {
                    join_chat(&bridge, port, n, encrypted.then_some(key)).await;
                }
                if let (Some(url), Some(endpoint)) = (preset.fetch, last) {
                    let command = shared::Command::FetchSend(shared::FetchSendCommand {
                        endpoint,
                        conn: None,
                        to: None,
                        url: url.to_string(),
                    });
                    bridge.run(&format!("Fetch {url}"), command).await;
                }
            });
        })
    };
    let on_chat_clients = {
        let bridge = bridge.clone();
        Callback::from(move |(port, n): (u16, usize)| {
            let bridge = bridge.clone();
            yew::platform::spawn_local(async move {
                join_chat(&bridge, port, n, None).await;
            });
        })
    };
    let on_upload = {
        let bridge = bridge.clone();
        Callback::from(move |file: web_sys::File| {
            let bridge = bridge.clone();
            yew::platform::spawn_local(async move { bridge.upload(file).await });
        })
    };
    let on_download = {
        let bridge = bridge.clone();
        Callback::from(move |name: String| {
            let bridge = bridge.clone();
            yew::platform::spawn_local(async move { bridge.download(&name).await });
        })
    };
    let on_refresh = {
        let bridge = bridge.clone();
        Callback::from(move |()| {
            let bridge = bridge.clone();
            yew::platform::spawn_local(async move { bridge.refresh_files().await });
        })
    };
    let on_check_list = {
        let bridge = bridge.clone();
        Callback::from(move |()| {
            let bridge = bridge.clone();
            yew::platform::spawn_local(async move {
                bridge.check_list().await;
                bridge.refresh_files().await;
            });
        })
    };
    let on_check_run = {
        let bridge = bridge.clone();
        Callback::from(move |command: shared::Command| {
            let bridge = bridge.clone();
            yew::platform::spawn_local(async move { bridge.check(command).await });
        })
    };
    // A failing step's evidence: picked (the timeline scrolls to it), and shown in the
    // sequence diagram or at the student's line in the Source tab.
    let on_check_show = {
        let (dispatch, tab) = (state.dispatcher(), tab.clone());
        Callback::from(
            move |(event, to): (std::rc::Rc<shared::Event>, check::Show)| {
                dispatch.dispatch(Action::Highlight {
                    seq: event.seq,
                    key: ConvKey::of(&event),
                });
                match to {
                    check::Show::Timeline => {}
                    check::Show::Sequence => tab.set(Tab::Sequence),
                    check::Show::Line => tab.set(Tab::Source),
                }
            },
        )
    };
    // The session's packets (None), or one conversation's.
    let on_capture_save = {
        let bridge = bridge.clone();
        Callback::from(move |key: Option<ConvKey>| {
            let bridge = bridge.clone();
            yew::platform::spawn_local(async move { bridge.capture_save(key).await });
        })
    };
    let on_compare = {
        let bridge = bridge.clone();
        Callback::from(move |command: shared::Command| {
            let bridge = bridge.clone();
            yew::platform::spawn_local(async move { bridge.compare(command).await });
        })
    };
    let on_reset = {
        let (run, lab) = (run.clone(), lab.clone());
        Callback::from(move |()| {
            lab.set(None);
            run.emit(("Reset".into(), Command::Reset))
        })
    };
    let on_lab_client = {
        let run = run.clone();
        Callback::from(move |port: u16| {
            let connect = Command::TcpClientConnect(shared::TcpClientSpec::to("127.0.0.1", port));
            run.emit(("Connect the playground's client".into(), connect))
        })
    };
    let on_lab_close = {
        let lab = lab.clone();
        Callback::from(move |()| lab.set(None))
    };
    let on_select = {
        let dispatch = state.dispatcher();
        Callback::from(move |key: ConvKey| dispatch.dispatch(Action::Select(Some(key))))
    };
    let on_pick = {
        let dispatch = state.dispatcher();
        Callback::from(move |event: std::rc::Rc<shared::Event>| {
            dispatch.dispatch(Action::Highlight {
                seq: event.seq,
                key: ConvKey::of(&event),
            })
        })
    };
    let on_export = {
        let state = state.clone();
        Callback::from(move |(all, secrets): (bool, bool)| {
            let started = state.bridge.as_ref().map_or(0, |b| b.started_unix_ms);
            let log = state.log.borrow();
            let earlier = if all { &log.earlier[..] } else { &[] };
            // Written by hand (shared::json_out), not by serde: the page's size.
            let events = earlier.iter().chain(log.events.iter()).map(|e| &**e);
            let text = shared::json_out::recording(started, events, secrets);
            save_text("socket-playground-session.json", &text);
        })
    };
    let on_open = {
        let dispatch = state.dispatcher();
        Callback::from(move |file: web_sys::File| {
            let dispatch = dispatch.clone();
            yew::platform::spawn_local(async move {
                let text = wasm_bindgen_futures::JsFuture::from(file.text()).await;
                let text = text.ok().and_then(|t| t.as_string()).unwrap_or_default();
                match shared::Recording::parse(&text) {
                    Ok(recording) => dispatch.dispatch(Action::ReplayLoad(Box::new(recording))),
                    Err(why) => dispatch.dispatch(Action::Failed {
                        title: format!("Opening {}", file.name()),
                        error: shared::ErrorInfo::new(shared::ErrorKind::InvalidRequest, why),
                    }),
                }
            });
        })
    };
    let on_step = {
        let (dispatch, playing) = (state.dispatcher(), playing.clone());
        Callback::from(move |to: usize| {
            playing.set(false);
            dispatch.dispatch(Action::ReplayTo(to))
        })
    };
    let on_play = {
        let playing = playing.clone();
        Callback::from(move |on: bool| playing.set(on))
    };
    let on_speed = {
        let speed = speed.clone();
        Callback::from(move |s: u32| speed.set(s))
    };
    // Back to live: the page reloads and the bridge sends a fresh snapshot.
    let on_leave = Callback::from(|()| {
        if let Some(window) = web_sys::window() {
            let _ = window.location().reload();
        }
    });
    let on_clear = {
        let dispatch = state.dispatcher();
        Callback::from(move |()| dispatch.dispatch(Action::Clear))
    };
    let on_dismiss = {
        let dispatch = state.dispatcher();
        Callback::from(move |()| dispatch.dispatch(Action::DismissNotice))
    };
    let toggle_lecture = {
        let (lecture, focus) = (lecture.clone(), focus.clone());
        Callback::from(move |()| {
            focus.set("all");
            lecture.set(!*lecture)
        })
    };
    let on_focus = {
        let (focus, tab) = (focus.clone(), tab.clone());
        Callback::from(move |view: &'static str| {
            match view {
                "sequence" => tab.set(Tab::Sequence),
                "conversation" => tab.set(Tab::Conversation),
                _ => {}
            }
            focus.set(view)
        })
    };
    let toggle_theme = {
        let dark = dark.clone();
        Callback::from(move |()| dark.set(!*dark))
    };

    let log = state.log.borrow();
    let roles = state
        .selected
        .map(|key| roles(&state, key))
        .unwrap_or_default();
    let (conversation, title, target) = match state.selected {
        Some(key) => {
            // A TCP server's own line shows its connections' messages too.
            let server = key.conn.is_none()
                && matches!(
                    log.specs.get(&key.endpoint),
                    Some((EndpointSpec::TcpServer(_), _))
                );
            let (events, skipped) = if server {
                log.server_conversation(key.endpoint, CONVERSATION_LIMIT, *conv_wire)
            } else {
                log.conversation(key, CONVERSATION_LIMIT, *conv_wire)
            };
            let title = conversation_title(&state, key);
            (
                Some((Events(events), skipped)),
                title,
                send_target(&state, key),
            )
        }
        None => (None, String::new(), None),
    };
    let started_unix_ms = state.bridge.as_ref().map_or(0, |b| b.started_unix_ms);
    let capturing = state
        .bridge
        .as_ref()
        .and_then(|b| b.capture.as_ref())
        .is_some_and(|c| c.on);
    // The timeline's filter: the endpoints of this demo, each name once (a second server on
    // the same port, after the first stopped, gets its number).
    let mut names: Vec<(shared::EndpointId, String)> = Vec::new();
    for id in log.specs.keys() {
        let here = state.endpoints.contains_key(id)
            || log.conversations.contains_key(&ConvKey {
                endpoint: *id,
                conn: None,
            });
        if !here {
            continue;
        }
        let mut name = log.name(*id);
        if names.iter().any(|(_, n)| *n == name) {
            name = format!("{name} (#{})", log.shown(*id));
        }
        names.push((*id, name));
    }
    let connected = state.link == Link::Open;
    let sender = state.selected.and_then(|key| file_sender(&state, key));
    // Simulated trouble applies to live endpoints, per endpoint (a server's connections share it).
    let trouble = state.selected.and_then(|key| {
        let endpoint = state.endpoints.get(&key.endpoint)?;
        let udp = matches!(
            endpoint.spec,
            EndpointSpec::UdpServer(_) | EndpointSpec::UdpClient(_)
        );
        Some((
            key.endpoint,
            udp,
            endpoint.spec.impairment().cloned().unwrap_or_default(),
        ))
    });
    let python_name = state.selected.map(|key| log.name(key.endpoint));
    // For the person's own program, the Python tab shows that program itself.
    let python_program = match (&state.program, &state.source, state.selected) {
        (_, Some(source), Some(_)) if selected_program == Some(source.0) => {
            Some((source.1.clone(), source.2.clone()))
        }
        (Some(program), _, Some(key)) if program.0 == key.endpoint => {
            Some((program.1.clone(), program.2.clone()))
        }
        _ => None,
    };
    let on_send_file = {
        let (run, sender) = (run.clone(), sender.clone());
        Callback::from(move |(file, datagram_size): (String, usize)| {
            if let Some(sender) = &sender {
                let command = shared::Command::SendFile(shared::SendFileCommand {
                    endpoint: sender.endpoint,
                    file: file.clone(),
                    datagram_size,
                });
                run.emit((format!("Send {file}"), command));
            }
        })
    };
    // The file transfers' reports, in one pass over the log: what each sender sent (its
    // hash, to tell a receiver whether its copy matches) and what each receiver got.
    let mut sent_hashes: Vec<String> = Vec::new();
    let mut arrivals: Vec<std::rc::Rc<shared::Event>> = Vec::new();
    for e in &log.events {
        if let shared::EventKind::Transfer(r) = &e.kind {
            match r.direction {
                shared::Direction::Sent => sent_hashes.push(r.sha256.clone()),
                shared::Direction::Received => arrivals.push(e.clone()),
            }
        }
    }
    // Connections that closed, for each live TCP server: they stay listed until it stops.
    let closed: Vec<(shared::EndpointId, Vec<(shared::ConnId, String)>)> = state
        .endpoints
        .values()
        .filter(|e| matches!(e.spec, EndpointSpec::TcpServer(_)))
        .map(|e| {
            let gone = log
                .connections_of(e.id)
                .into_iter()
                .filter(|(conn, _)| !e.connections.iter().any(|c| c.id == *conn))
                .collect();
            (e.id, gone)
        })
        .filter(|(_, gone): &(_, Vec<_>)| !gone.is_empty())
        .collect();
    // How many clients wait in the backlog of each one-at-a-time TCP server (its latest report).
    let backlog: Vec<(shared::EndpointId, u32)> = state
        .endpoints
        .values()
        .filter(|e| {
            matches!(&e.spec, EndpointSpec::TcpServer(s)
                if s.concurrency == shared::Concurrency::OneAtATime)
        })
        .filter_map(|e| {
            let key = ConvKey {
                endpoint: e.id,
                conn: None,
            };
            let indices = log.conversations.get(&key)?;
            indices
                .iter()
                .rev()
                .find_map(|&i| match log.events[i].kind {
                    shared::EventKind::Backlog { waiting } => Some((e.id, waiting)),
                    _ => None,
                })
        })
        .filter(|(_, waiting)| *waiting > 0)
        .collect();
    // Chat members' nicknames, kept by the log as the lines come.
    let nicks: Vec<(ConvKey, String)> = log.nicks.iter().map(|(k, n)| (*k, n.clone())).collect();
    // Where the person's programs are stuck: a traced socket whose last call waits.
    let waiting: Vec<(ConvKey, String)> = log
        .conversations
        .keys()
        .filter(|key| {
            matches!(
                log.specs.get(&key.endpoint),
                Some((EndpointSpec::Traced(_), _))
            )
        })
        .filter_map(|key| {
            let last = log.last_of(*key)?;
            match &last.kind {
                shared::EventKind::Waiting { op } => {
                    let line = last
                        .at
                        .as_ref()
                        .filter(|at| at.line > 0)
                        .map_or(String::new(), |at| format!(" at line {}", at.line));
                    Some((*key, format!("{op}(){line}")))
                }
                _ => None,
            }
        })
        .collect();
    let console = state.selected.and_then(|key| {
        let (spec, _) = log.specs.get(&key.endpoint)?;
        let EndpointSpec::Program(spec) = spec else {
            return None;
        };
        let (events, _) = log.conversation(key, CONVERSATION_LIMIT, false);
        let program = key.endpoint;
        let stuck = waiting
            .iter()
            .filter(|(k, _)| log.program_of(k.endpoint) == Some(program))
            .map(|(_, w)| w.clone())
            .collect::<Vec<_>>();
        Some((program, spec.clone(), Events(events), stuck))
    });
    // The Source tab: the picked call's line if it is this program's, else the latest call's.
    let source_view = {
        let program = selected_program;
        let in_program =
            |e: &shared::Event| program.is_some() && log.program_of(e.endpoint) == program;
        let picked = state
            .highlight
            .and_then(|seq| log.events.iter().rev().find(|e| e.seq == seq))
            .filter(|e| e.at.is_some() && in_program(e))
            .or_else(|| {
                state.selected.and_then(|key| {
                    let (events, _) = log.conversation(key, 50, false);
                    events
                        .into_iter()
                        .rev()
                        .find(|e| e.at.is_some())
                        .and_then(|e| log.events.iter().rev().find(|x| x.seq == e.seq))
                })
            });
        let mut calls: Vec<u32> = Vec::new();
        if *tab == Tab::Source {
            for e in log.events.iter().filter(|e| in_program(e)) {
                if let Some(at) = &e.at {
                    let line = at.line as usize;
                    if calls.len() <= line {
                        calls.resize(line + 1, 0);
                    }
                    calls[line] += 1;
                }
            }
        }
        let code = match (&state.source, program) {
            (Some(source), Some(p)) if source.0 == p => Some((source.1.clone(), source.2.clone())),
            _ => None,
        };
        (
            program.map(|p| log.name(p)),
            code,
            picked.and_then(|e| e.at.as_ref().map(|at| at.line)),
            picked.map(|e| crate::format::call(e)),
            calls,
        )
    };
    let on_program_input = {
        let bridge = bridge.clone();
        let program = console.as_ref().map(|c| c.0);
        Callback::from(move |text: String| {
            if let Some(program) = program {
                let bridge = bridge.clone();
                yew::platform::spawn_local(
                    async move { bridge.program_input(program, &text).await },
                );
            }
        })
    };
    let on_program_stop = {
        let run = run.clone();
        let program = console.as_ref().map(|c| (c.0, c.1.label()));
        Callback::from(move |()| {
            if let Some((program, name)) = &program {
                run.emit((format!("Stop {name}"), Command::close(*program, None)));
            }
        })
    };
    let tab_button = |which: Tab, label: &'static str| {
        let tab_set = tab.clone();
        html! {
            <button type="button" role="tab" aria-selected={(*tab == which).to_string()} data-tab={label}
                    class={crate::format::on(*tab == which, "active")}
                    onclick={Callback::from(move |_: MouseEvent| tab_set.set(which))}>{ label }</button>
        }
    };

    html! {
        <div class={crate::format::classes(&["app", crate::format::on(*dark, "dark"), crate::format::on(*lecture, "lecture")])}>
            { header(&header::Props { menu: labs_menu.clone(), secrets: export_secrets.clone(), link: state.link.clone(), bridge: state.bridge.clone(), on_preset, on_reset, lecture: *lecture, on_lecture: toggle_lecture, focus: *focus, on_focus, slow, queued: state.queued, dark: *dark, on_theme: toggle_theme, on_export, on_clear, cleared: !state.log.borrow().earlier.is_empty(), on_open }) }
            if let Some(replay) = state.replay.clone() {
                { replay_bar(&replay::Props { replay, playing: *playing, speed: *speed,
                                             on_step, on_play, on_speed, on_leave }) }
            }
            <main class={format!("columns focus-{}", if *lecture { *focus } else { "all" })}>
                <section class="panel endpoints" aria-label="Endpoints">
                    if let Some(preset) = *lab {
                        { lab_card(&lab_card::Props { preset, on_client: on_lab_client, on_close: on_lab_close }) }
                    }
                    { endpoint_list(&endpoint_list::Props { joiners: joiners.clone(), endpoints: state.endpoints.values().cloned().collect::<Vec<_>>(), selected: state.selected, on_select: on_select.clone(), on_command: run.clone(), on_chat_clients, waiting, closed, backlog, base: log.base, live: connected || state.replay.is_some(), nicks }) }
                    <NewEndpoint on_command={run.clone()} enabled={connected}
                                 lab_port={lab.and_then(|i| PRESETS.get(i)).and_then(|p| p.server_port())} />
                </section>
                <section class="panel conversation" aria-label="Conversation">
                    if let Some(notice) = state.notice.clone() {
                        { notice_bar(&notice::Props { notice, on_dismiss }) }
                    }
                    if let Some(info) = state.info.clone() {
                        <div class="info" role="status" id="info">
                            <span>{ info }</span>
                            <button type="button" aria-label="Dismiss" onclick={{
                                let dispatch = state.dispatcher();
                                Callback::from(move |_: MouseEvent| dispatch.dispatch(Action::DismissInfo))
                            }}>{ "✕" }</button>
                        </div>
                    }
                    <div class="tabs middle-tabs" role="tablist">
                        { tab_button(Tab::Conversation, "Conversation") }
                        { tab_button(Tab::Programs, "Programs") }
                        { tab_button(Tab::Check, "Check") }
                        { tab_button(Tab::Source, "Source") }
                        { tab_button(Tab::Files, "Files") }
                        { tab_button(Tab::Compare, "TCP vs UDP") }
                        { tab_button(Tab::Sequence, "Sequence") }
                        { tab_button(Tab::Python, "Python") }
                    </div>
                    if *tab == Tab::Conversation && console.is_some() {
                        if let Some((program, spec, events, stuck)) = console.clone() {
                            <Console {spec} {events} waiting={stuck}
                                     running={state.endpoints.get(&program).is_some()}
                                     on_input={on_program_input} on_stop={on_program_stop} />
                        }
                    } else if *tab == Tab::Conversation {
                        <Conversation
                            {title}
                            roles={roles}
                            conversation={conversation}
                            started_unix_ms={started_unix_ms}
                            sent_hashes={sent_hashes}
                            arrivals={Events(arrivals)}
                            conn_base={log.base.1}
                            wire={(capturing || log.packets).then_some(*conv_wire)}
                            on_wire={{ let w = conv_wire.clone(); Callback::from(move |()| w.set(!*w)) }}
                            on_capture_save={on_capture_save.clone()}
                            counters={state.selected.and_then(|key| log.counters(key))}
                            conv={state.selected}
                        />
                        <Composer target={target} on_command={run.clone()} enabled={connected} />
                        if let Some((endpoint, udp, initial)) = trouble {
                            <Trouble {endpoint} {udp} {initial} on_command={run.clone()} />
                        }
                    } else if *tab == Tab::Programs {
                        <Programs files={state.files.clone()} loaded={(*loaded).clone()}
                                  on_open={on_open_program} on_save={on_save_program}
                                  on_run={on_run_program} enabled={connected} />
                    } else if *tab == Tab::Check {
                        <Check checks={state.checks.clone()} files={state.files.clone()}
                               log={state.log.clone()} version={state.version} enabled={connected}
                               running={state.checking} on_list={on_check_list}
                               on_run={on_check_run} on_show={on_check_show} />
                    } else if *tab == Tab::Source {
                        <Source name={source_view.0} code={source_view.1} line={source_view.2}
                                call={source_view.3} calls={source_view.4} />
                    } else if *tab == Tab::Files {
                        { files(&files::Props { datagram: datagram.clone(), files: state.files.clone(), uploads: state.uploads.clone(), sender, on_upload, on_download, on_refresh, on_send: on_send_file, data_dir: state.bridge.as_ref().map(|b| b.data_dir.clone()).unwrap_or_default(), on_view, viewing: (*viewing).clone(), on_close_view }) }
                    } else if *tab == Tab::Sequence {
                        <label class="only">{ "Show " }
                            <select id="sequence-scope" onchange={{
                                let seq_scope = seq_scope.clone();
                                Callback::from(move |e: Event| seq_scope.set(
                                    e.target_unchecked_into::<web_sys::HtmlSelectElement>().value()))
                            }}>
                                { for [("lab", "this lab (since the last preset or Reset)"),
                                       ("selected", "only the selected conversation"),
                                       ("all", "everything")].into_iter().map(|(value, text)| html! {
                                    <option {value} selected={*seq_scope == value}>{ text }</option>
                                }) }
                            </select>
                        </label>
                        if capturing || log.packets {
                            <label class="only"><input type="checkbox" id="sequence-wire" checked={*seq_wire}
                                onchange={{ let w = seq_wire.clone(); Callback::from(move |_: Event| w.set(!*w)) }} />
                                { " packets on the wire" }</label>
                        }
                        { sequence::sequence(&sequence::Props { log: state.log.clone(), large: *lecture,
                                  only: (*seq_scope == "selected").then_some(state.selected).flatten(),
                                  start: if *seq_scope == "lab" { log.lab_start } else { 0 },
                                  highlight: state.highlight, wire: *seq_wire,
                                  on_select: on_pick.clone() }) }
                    } else if *tab == Tab::Compare {
                        <Compare report={state.comparison.clone()} on_run={on_compare} enabled={connected} />
                    } else {
                        <Python name={python_name} program={python_program} />
                    }
                </section>
                <section class="panel timeline-panel" aria-label="Timeline">
                    <Timeline
                        log={state.log.clone()}
                        version={state.version}
                        names={names}
                        started_unix_ms={started_unix_ms}
                        lecture={*lecture}
                        on_select={on_select}
                        on_pick={on_pick.clone()}
                        highlight={state.highlight}
                        capture={state.bridge.as_ref().and_then(|b| b.capture.clone())}
                        on_capture_save={on_capture_save.reform(|()| None)}
                    />
                </section>
            </main>
        </div>
    }
}

fn conversation_title(state: &State, key: ConvKey) -> String {
    let log = state.log.borrow();
    let name = log.name(key.endpoint);
    match key.conn {
        Some(conn) => {
            let peer = state
                .endpoints
                .get(&key.endpoint)
                .and_then(|e| e.connections.iter().find(|c| c.id == conn))
                .map(|c| c.peer.clone())
                .unwrap_or_else(|| "closed".into());
            format!("{name}, {} ({peer})", log.conn_name(conn))
        }
        None => name,
    }
}

/// Where the composer sends for the selected conversation, if that endpoint is alive and can.
fn send_target(state: &State, key: ConvKey) -> Option<SendTarget> {
    let endpoint = state.endpoints.get(&key.endpoint)?;
    let label = conversation_title(state, key);
    match (&endpoint.spec, key.conn) {
        (EndpointSpec::TcpServer(_), Some(conn)) => endpoint
            .connections
            .iter()
            .any(|c| c.id == conn)
            .then(|| SendTarget::tcp(key.endpoint, Some(conn), label)),
        (EndpointSpec::TcpClient(spec), None) => Some(SendTarget {
            fernet: spec.fernet_key.is_some(),
            lines: peer_behaviour(state, endpoint.peer.as_deref()) == Some(shared::Behaviour::Chat),
            discard: peer_behaviour(state, endpoint.peer.as_deref())
                == Some(shared::Behaviour::Discard),
            ..SendTarget::tcp(key.endpoint, None, label)
        }),
        (EndpointSpec::UdpClient(_), None) => Some(SendTarget::udp(key.endpoint, None, label)),
        (EndpointSpec::UdpServer(_), None) => {
            // A UDP server answers whoever wrote to it last.
            let log = state.log.borrow();
            let (events, _) = log.conversation(key, 50, false);
            let last_sender = events
                .iter()
                .rev()
                .find(|e| matches!(e.kind, shared::EventKind::RecvFrom { .. }))
                .and_then(|e| e.peer.clone());
            last_sender.map(|to| SendTarget::udp(key.endpoint, Some(to), label))
        }
        _ => None,
    }
}

/// Connects `n` clients to the chat server on `port`, named by what the room already has.
async fn join_chat(bridge: &crate::hooks::Bridge, port: u16, n: usize, key: Option<String>) {
    use shared::{Command, DataInput, Outcome, ReplyData, TcpClientSpec};
    let names = ["ada", "bob", "cleo", "dev", "eve", "finn", "gus", "hana"];
    for i in 0..n {
        let connect = Command::TcpClientConnect(TcpClientSpec {
            fernet_key: key.clone(),
            ..TcpClientSpec::to("127.0.0.1", port)
        });
        let Outcome::Ok(ReplyData::Endpoint(info)) = bridge.request(connect).await else {
            return;
        };
        bridge.created(info.clone());
        let round = i / names.len();
        let suffix = if round > 0 {
            round.to_string()
        } else {
            String::new()
        };
        let nick = DataInput::Text(format!("/nick {}{suffix}\n", names[i % names.len()]));
        bridge
            .run("Join the chat", Command::send(info.id, None, None, nick))
            .await;
    }
}

/// How the bridge's TCP server at `peer` behaves, if `peer` is one of them.
fn peer_behaviour(state: &State, peer: Option<&str>) -> Option<shared::Behaviour> {
    let port = peer.map(crate::format::port)?;
    state.endpoints.values().find_map(|e| match &e.spec {
        EndpointSpec::TcpServer(s) if e.local.as_deref().map(crate::format::port) == Some(port) => {
            Some(s.behaviour.clone())
        }
        _ => None,
    })
}

/// The client files can be sent from, for the selected conversation.
fn file_sender(state: &State, key: ConvKey) -> Option<FileSender> {
    let endpoint = state.endpoints.get(&key.endpoint)?;
    let udp = match endpoint.spec {
        EndpointSpec::TcpClient(_) => false,
        EndpointSpec::UdpClient(_) => true,
        _ => return None,
    };
    Some(FileSender {
        endpoint: key.endpoint,
        label: conversation_title(state, key),
        udp,
    })
}

/// The names of the two sides of a conversation: this socket's role first.
fn roles(state: &State, key: ConvKey) -> (String, String) {
    let log = state.log.borrow();
    let spec = log.specs.get(&key.endpoint).map(|(spec, _)| spec);
    let (mine, theirs) = match (spec, key.conn) {
        (Some(EndpointSpec::TcpClient(_) | EndpointSpec::UdpClient(_)), _) => ("client", "server"),
        (Some(_), _) => ("server", "client"),
        (None, _) => ("this socket", "peer"),
    };
    (mine.to_string(), theirs.to_string())
}

fn prefers_dark() -> bool {
    web_sys::window()
        .and_then(|w| w.match_media("(prefers-color-scheme: dark)").ok().flatten())
        .is_some_and(|m| m.matches())
}
