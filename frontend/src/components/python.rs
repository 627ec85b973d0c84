//! The Python code mirror: the runnable Python 3 program that does what the selected endpoint
//! does, in the style of the labs, to copy or download and run next to the playground.

use wasm_bindgen::JsCast;
use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub struct Props {
    /// The selected endpoint's name.
    pub name: Option<String>,
    /// Its program from the bridge (file name, code), once it arrived.
    pub program: Option<(String, String)>,
}

#[function_component]
pub fn Python(props: &Props) -> Html {
    // What Copy did, said on the button: the clipboard gives no sign of its own.
    let copied = use_state(|| None::<bool>);
    {
        let copied = copied.clone();
        use_effect_with(props.program.clone(), move |_| copied.set(None));
    }
    let (Some(name), Some((file, code))) = (&props.name, &props.program) else {
        return html! {
            <div class="python">
                <h2>{ "Python" }</h2>
                <p class="muted">{ "Select a server or client to see the Python program that does the same." }</p>
            </div>
        };
    };
    let on_copy = {
        let (code, copied) = (code.clone(), copied.clone());
        Callback::from(move |_: MouseEvent| {
            let Some(window) = web_sys::window() else {
                return;
            };
            let written = window.navigator().clipboard().write_text(&code);
            let copied = copied.clone();
            yew::platform::spawn_local(async move {
                let done = wasm_bindgen_futures::JsFuture::from(written).await;
                copied.set(Some(done.is_ok()));
            });
        })
    };
    let on_download = {
        let (file, code) = (file.clone(), code.clone());
        Callback::from(move |_: MouseEvent| save_text(&file, &code))
    };
    html! {
        <div class="python">
            <h2>{ "Python" }</h2>
            <p class="conv-title">{ format!("{name}, as a Python 3 program") }</p>
            <div class="composer-row">
                <button type="button" class="small" id="python-copy" onclick={on_copy}>{ match *copied {
                    None => "Copy",
                    Some(true) => "Copied ✓",
                    Some(false) => "Copy failed: select the text and copy it by hand",
                } }</button>
                <button type="button" class="small" onclick={on_download}>{ format!("Download {file}") }</button>
                <span class="muted">{ format!("then: python3 {file}") }</span>
            </div>
            <pre class="code" id="python-code"><code>{ code.clone() }</code></pre>
        </div>
    }
}

/// Offers `text` as a file download.
pub(crate) fn save_text(name: &str, text: &str) {
    let parts = js_sys::Array::of1(&text.into());
    let Ok(blob) = web_sys::Blob::new_with_str_sequence(&parts) else {
        return;
    };
    let Ok(href) = web_sys::Url::create_object_url_with_blob(&blob) else {
        return;
    };
    let anchor = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.create_element("a").ok())
        .and_then(|a| a.dyn_into::<web_sys::HtmlAnchorElement>().ok());
    if let Some(anchor) = anchor {
        anchor.set_href(&href);
        anchor.set_download(name);
        anchor.click();
    }
    let _ = web_sys::Url::revoke_object_url(&href);
}
