//! The timeline of every event: time, endpoint, call, addresses, bytes and a preview. Only the
//! rows in view are drawn (fixed row height), so 100,000 events scroll as smoothly as 100. It
//! follows new events unless the person has scrolled away, and filters by endpoint and kind.

use web_sys::{HtmlElement, HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::format::{self, Group};
use crate::state::{ConvKey, Filter, SharedLog};

/// Rows drawn above and below the visible ones, so fast scrolling shows no gaps.
const OVERSCAN: usize = 8;

#[derive(Properties)]
pub struct Props {
    pub log: SharedLog,
    /// Changes whenever the log does.
    pub version: u64,
    /// Names of all endpoints seen, for the filter.
    pub names: Vec<(u32, String)>,
    pub started_unix_ms: u64,
    pub lecture: bool,
    pub on_select: Callback<ConvKey>,
    /// A traced call clicked: picked, to show its line.
    pub on_pick: Callback<std::rc::Rc<shared::Event>>,
    /// An event picked elsewhere: scrolled to and marked.
    pub highlight: Option<u64>,
    /// Whether the bridge captures packets (what the welcome said).
    pub capture: Option<shared::CaptureStatus>,
    /// Saves the captured packets as a pcapng file and downloads it.
    pub on_capture_save: Callback<()>,
}

impl PartialEq for Props {
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version
            && self.log == other.log
            && self.names == other.names
            && self.started_unix_ms == other.started_unix_ms
            && self.lecture == other.lecture
            && self.highlight == other.highlight
            && self.capture == other.capture
            && self.on_select == other.on_select
            && self.on_pick == other.on_pick
    }
}

#[function_component]
pub fn Timeline(props: &Props) -> Html {
    let filter = use_state(Filter::default);
    let scroll_top = use_state(|| 0.0f64);
    let viewport = use_state(|| 600.0f64);
    let follow = use_state(|| true);
    let clock = use_state(|| false);
    let body = use_node_ref();
    let row_height = if props.lecture { 34.0 } else { 22.0 };

    let rows = {
        let log = props.log.clone();
        use_memo(
            ((*filter).clone(), props.version, props.log.id()),
            move |(filter, _, _)| log.borrow().filtered(filter),
        )
    };

    // Keep the newest row in view while following.
    {
        let body = body.clone();
        let follow = *follow;
        let viewport = viewport.clone();
        use_effect_with((rows.len(), follow, props.lecture), move |_| {
            if let Some(el) = body.cast::<HtmlElement>() {
                viewport.set(f64::from(el.client_height()));
                if follow {
                    el.set_scroll_top(el.scroll_height());
                }
            }
        });
    }

    // Bring a picked event into view (and stop following, so it stays there).
    {
        let (body, follow, rows, log) = (
            body.clone(),
            follow.clone(),
            rows.clone(),
            props.log.clone(),
        );
        use_effect_with(props.highlight, move |highlight| {
            let log = log.borrow();
            let index =
                highlight.and_then(|seq| rows.iter().position(|i| log.events[*i].seq == seq));
            if let (Some(index), Some(el)) = (index, body.cast::<HtmlElement>()) {
                follow.set(false);
                let target = index as f64 * row_height - f64::from(el.client_height()) / 2.0;
                el.set_scroll_top(target.max(0.0) as i32);
            }
        });
    }
    let on_scroll = {
        let (body, scroll_top, viewport, follow) = (
            body.clone(),
            scroll_top.clone(),
            viewport.clone(),
            follow.clone(),
        );
        Callback::from(move |_: Event| {
            if let Some(el) = body.cast::<HtmlElement>() {
                let top = f64::from(el.scroll_top());
                let height = f64::from(el.client_height());
                let at_bottom = top + height >= f64::from(el.scroll_height()) - row_height * 1.5;
                // Only a scroll up leaves the newest rows. Yew may yield to the browser
                // between drawing new rows and the effect that scrolls to them, so a scroll
                // event can find the list grown below it: that is not the person moving.
                // (Read before the `set` below: yew's state handles read the newest value.)
                if *follow != at_bottom && (at_bottom || top < *scroll_top) {
                    follow.set(at_bottom);
                }
                scroll_top.set(top);
                viewport.set(height);
            }
        })
    };

    let total = rows.len();
    let visible = (*viewport / row_height).ceil() as usize + 1;
    let first = if *follow {
        total.saturating_sub(visible)
    } else {
        ((*scroll_top / row_height) as usize).min(total.saturating_sub(1))
    };
    let start = first.saturating_sub(OVERSCAN);
    let end = (first + visible + OVERSCAN).min(total);

    let log = props.log.borrow();
    let tz_offset = js_sys::Date::new_0().get_timezone_offset() as i64;
    let row_views = rows[start..end].iter().enumerate().map(|(i, index)| {
        let event = &log.events[*index];
        let top = (start + i) as f64 * row_height;
        // When it happened (a packet on the wire, a traced call when made), as rows are ordered.
        let when = event.when();
        let time = if *clock {
            format::clock(props.started_unix_ms + when / 1000, tz_offset)
        } else {
            format::relative(when)
        };
        let key = ConvKey::of(event);
        // A traced call is picked (its line shows in the Source tab), anything else selects
        // its conversation.
        let on_click = if event.at.is_some() {
            let event = event.clone();
            props.on_pick.reform(move |_: MouseEvent| event.clone())
        } else {
            props.on_select.reform(move |_: MouseEvent| key)
        };
        let group = Group::of(&event.kind);
        let detail = match format::line(event) {
            Some(line) => format!("{line} · {}", format::detail(event)),
            None => format::detail(event),
        };
        let title = match format::code_at(event) {
            Some(code) => format!("{code}\n{detail}"),
            None => detail.clone(),
        };
        html! {
            <button type="button" key={event.seq}
                    class={format::classes(&["row", group.label(), format::on(*clock, "clock"), format::on(props.highlight == Some(event.seq), "highlight")])}
                    style={format!("top:{}px;height:{}px", top as i64, row_height as i64)}
                    data-kind={event.kind.name()} onclick={on_click}
                    title={title}>
                <span class="t">{ time }</span>
                <span class="ep">{ log.name(event.endpoint) }{ event.conn.map(|c| format!(" {}", log.conn_name(c))).unwrap_or_default() }</span>
                <span class="call">{ format::call(event) }</span>
                <span class="detail">{ detail }</span>
            </button>
        }
    });

    let on_endpoint = {
        let filter = filter.clone();
        Callback::from(move |e: Event| {
            let value = e.target_unchecked_into::<HtmlSelectElement>().value();
            filter.set(Filter {
                endpoint: value.parse().ok(),
                ..(*filter).clone()
            });
        })
    };
    let group_box = |group: Group| {
        let checked = filter.groups.contains(&group);
        let filter = filter.clone();
        let on_change = Callback::from(move |e: Event| {
            let on = e.target_unchecked_into::<HtmlInputElement>().checked();
            let mut next = (*filter).clone();
            if on {
                next.groups.insert(group);
            } else {
                next.groups.remove(&group);
            }
            filter.set(next);
        });
        html! {
            <label class={format::classes(&["check", group.label()])}>
                <input type="checkbox" checked={checked} onchange={on_change} />
                { group.label() }
            </label>
        }
    };
    let on_follow = {
        let follow = follow.clone();
        Callback::from(move |_: MouseEvent| follow.set(true))
    };
    let on_clock = {
        let clock = clock.clone();
        Callback::from(move |_: MouseEvent| clock.set(!*clock))
    };
    html! {
        <div class="timeline">
            <div class="timeline-head">
                <h2>{ "Timeline" }</h2>
                <span class="muted" id="event-count">{ format!("{total} events") }</span>
                <button type="button" class="small" onclick={on_clock}>{ if *clock { "relative time" } else { "clock time" } }</button>
                if props.capture.as_ref().is_some_and(|c| c.on) {
                    <button type="button" class="small" id="capture-save" title="The captured packets as a pcapng file, for Wireshark"
                            onclick={props.on_capture_save.reform(|_: MouseEvent| ())}>{ "Packets (pcapng)" }</button>
                }
            </div>
            if let Some(off) = props.capture.as_ref().filter(|c| !c.on) {
                <p class="muted small-print" id="capture-status">{ off.detail.clone() }
                    if let Some(hint) = &off.hint { { " To allow it: " }<code>{ hint.clone() }</code> }
                </p>
            }
            <p class="muted small-print" id="timeline-hint">{ "Click a row to see its conversation (or, for your program's calls, its line)." }</p>
            <div class="filters">
                <select aria-label="Show the events of" onchange={on_endpoint}>
                    <option value="" selected={filter.endpoint.is_none()}>{ "all endpoints" }</option>
                    { for props.names.iter().map(|(id, name)| html! {
                        <option value={id.to_string()} selected={filter.endpoint == Some(*id)}>{ name.clone() }</option>
                    }) }
                </select>
                { for Group::ALL.into_iter().map(group_box) }
            </div>
            if log.missed > 0 {
                <p class="warn">{ format!("{} events were skipped because this tab could not keep up.", log.missed) }</p>
            }
            if log.dropped > 0 {
                <p class="muted">{ format!("{} older events are no longer kept by the bridge.", log.dropped) }</p>
            }
            <div class="timeline-body" ref={body} onscroll={on_scroll} role="log" aria-label="Events">
                <div class="spacer" style={format!("height:{}px", (total as f64 * row_height) as i64)}>
                    { for row_views }
                </div>
            </div>
            if !*follow {
                <button type="button" class="follow" onclick={on_follow}>{ "↓ Follow new events" }</button>
            }
        </div>
    }
}
