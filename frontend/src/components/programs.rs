//! The Programs tab: write or paste a Python program (or open a `.py` file of the data
//! directory), give it arguments and run it, traced: every socket call it makes then shows up
//! with its line. The text stays in this view until it is saved (Save, or Run, which saves
//! first). A name that does not end in `.py` is any other program (C, Java, Node: a file of
//! the data directory or a command), run with the arguments and traced by its system calls,
//! without lines; the editor's text is then left alone. One field for both keeps the page
//! small (its size budget).

use shared::FileInfo;
use web_sys::{HtmlInputElement, HtmlSelectElement, HtmlTextAreaElement};
use yew::prelude::*;

/// What a new program starts as.
const STARTER: &str = "from socket import *\n\nserverPort = 12000\nserverSocket = socket(AF_INET, SOCK_STREAM)\nserverSocket.bind(('127.0.0.1', serverPort))\nserverSocket.listen(1)\nprint('The server is ready to receive')\nwhile True:\n    connectionSocket, addr = serverSocket.accept()\n    sentence = connectionSocket.recv(1024).decode()\n    connectionSocket.send(sentence.upper().encode())\n    connectionSocket.close()\n";

#[derive(Properties, PartialEq)]
pub struct Props {
    /// The data directory's files (its `.py` files can be opened).
    pub files: Vec<FileInfo>,
    /// A file's text as the bridge read it (file, text), to show in the editor.
    pub loaded: Option<std::rc::Rc<(String, String)>>,
    /// Asks for a file's text.
    pub on_open: Callback<String>,
    /// Saves (file, text).
    pub on_save: Callback<(String, String)>,
    /// Runs (file, arguments), having saved the editor's text as it first when it is given.
    pub on_run: Callback<(String, Option<String>, String)>,
    pub enabled: bool,
}

#[function_component]
pub fn Programs(props: &Props) -> Html {
    let name = use_state(|| "tcp_server.py".to_string());
    let source = use_state(|| STARTER.to_string());
    let args = use_state(String::new);
    // A file the bridge read replaces the editor's text.
    {
        let (name, source) = (name.clone(), source.clone());
        use_effect_with(props.loaded.clone(), move |loaded| {
            if let Some(loaded) = loaded {
                name.set(loaded.0.clone());
                source.set(loaded.1.clone());
            }
        });
    }
    let on_pick = {
        let on_open = props.on_open.clone();
        Callback::from(move |e: Event| {
            let file = e.target_unchecked_into::<HtmlSelectElement>().value();
            if !file.is_empty() {
                on_open.emit(file);
            }
        })
    };
    let on_name = {
        let name = name.clone();
        Callback::from(move |e: InputEvent| {
            name.set(e.target_unchecked_into::<HtmlInputElement>().value())
        })
    };
    let on_source = {
        let source = source.clone();
        Callback::from(move |e: InputEvent| {
            source.set(e.target_unchecked_into::<HtmlTextAreaElement>().value())
        })
    };
    let on_args = {
        let args = args.clone();
        Callback::from(move |e: InputEvent| {
            args.set(e.target_unchecked_into::<HtmlInputElement>().value())
        })
    };
    let on_save = {
        let (name, source, save) = (name.clone(), source.clone(), props.on_save.clone());
        Callback::from(move |_: MouseEvent| save.emit(((*name).clone(), (*source).clone())))
    };
    let on_run = {
        let (name, source, args, run) = (
            name.clone(),
            source.clone(),
            args.clone(),
            props.on_run.clone(),
        );
        Callback::from(move |_: MouseEvent| {
            let python = name.ends_with(".py");
            let source = python.then(|| (*source).clone());
            run.emit((name.trim().to_string(), source, (*args).clone()))
        })
    };
    let python_files: Vec<&FileInfo> = props
        .files
        .iter()
        .filter(|f| f.name.ends_with(".py"))
        .collect();
    let named_ok = name.ends_with(".py") && name.len() > 3;
    let runnable = !name.trim().is_empty();
    html! {
        <div class="programs-view">
            <h2>{ "Your program" }</h2>
            <p class="muted">
                { "Write or paste your Python program, or open one, then Run: every socket call it makes appears on the timeline with the line that made it. Working in your own editor? Run " }
                <code>{ "bridge trace -- python3 your_program.py" }</code>
                { " in a terminal instead." }
            </p>
            <div class="program-row">
                <label>{ "Open " }
                    <select id="program-open" onchange={on_pick} disabled={!props.enabled}>
                        <option value="" selected=true>{ if python_files.is_empty() { "(no .py files yet)" } else { "a .py file…" } }</option>
                        { for python_files.iter().map(|f| html! { <option value={f.name.clone()}>{ f.name.clone() }</option> }) }
                    </select>
                </label>
                <label>{ "Name " }
                    <input type="text" id="program-name" value={(*name).clone()} oninput={on_name}
                           aria-invalid={(!named_ok).then_some("true")} />
                </label>
            </div>
            <textarea id="program-source" class="program-source" spellcheck="false" aria-label="Your program"
                      value={(*source).clone()} oninput={on_source} />
            <div class="program-row">
                <label class="grow">{ "Arguments " }
                    <input type="text" id="program-args" placeholder="such as 12000" value={(*args).clone()} oninput={on_args} />
                </label>
                <button type="button" id="program-save" onclick={on_save} disabled={!props.enabled || !named_ok}>{ "Save" }</button>
                <button type="button" id="program-run" class="primary" onclick={on_run} disabled={!props.enabled || !runnable}>{ "▶ Run" }</button>
            </div>
            <p class="muted small-print">{ "It runs with python3 in the bridge's data directory, as you. Select it on the left to see its output, type into its input() or stop it. Not Python? Name a program (./server, java) instead." }</p>
        </div>
    }
}
