//! The Source tab: a traced program's script with line numbers, the line of the picked (or
//! latest) call marked and scrolled into view, and every line that made a socket call marked
//! with how many it made.

use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub struct Props {
    /// The program's name, or None when no program's socket is selected.
    pub name: Option<String>,
    /// The script: file and text, once the bridge sent it.
    pub code: Option<(String, String)>,
    /// The line to mark.
    pub line: Option<u32>,
    /// The call it made there (`recv()`), for the caption.
    pub call: Option<String>,
    /// How many calls each line made (indexed by line number).
    pub calls: Vec<u32>,
}

#[function_component]
pub fn Source(props: &Props) -> Html {
    let view = use_node_ref();
    {
        let view = view.clone();
        // Once the source is there too: the bar exists only then.
        use_effect_with((props.line, props.code.is_some()), move |(line, _)| {
            if let (Some(_), Some(el)) = (line, view.cast::<web_sys::Element>()) {
                if let Ok(Some(bar)) = el.query_selector(".marked") {
                    bar.scroll_into_view_with_bool(false);
                }
            }
        });
    }
    let Some(name) = &props.name else {
        return html! {
            <div class="source-view">
                <p class="muted">{ "Select your program or one of its sockets to see its source; pick a call in the timeline or sequence diagram to see its line." }</p>
            </div>
        };
    };
    let Some((file, code)) = &props.code else {
        return html! {
            <div class="source-view"><p class="muted">{ format!("The source of {name} is on its way (or was not sent).") }</p></div>
        };
    };
    // One text, numbered, and one bar over the marked line: a node per line cost the page
    // more code than it is worth (the page's size budget).
    let mut text = String::with_capacity(code.len() + 8 * code.lines().count());
    for (i, line) in code.lines().enumerate() {
        let n = i + 1;
        let calls = props.calls.get(n).copied().unwrap_or(0);
        let mark = match calls {
            0 => "  ",
            _ => "● ",
        };
        text.push_str(&format!("{n:>4} {mark}{line}\n"));
    }
    let bar = props
        .line
        .map(|line| format!("top:calc({}em * 1.45 + .5em)", line.saturating_sub(1)));
    html! {
        <div class="source-view" ref={view}>
            <p class="conv-title">{ file.clone() }</p>
            if let (Some(line), Some(call)) = (props.line, &props.call) {
                <p class="muted" id="source-caption">{ format!("{call} was made by line {line}; ● marks the lines that made socket calls") }</p>
            }
            <div class="source">
                if let Some(style) = bar {
                    <div class="marked" style={style} data-line={props.line.unwrap_or(0).to_string()}></div>
                }
                <pre class="source-text">{ text }</pre>
            </div>
        </div>
    }
}
