//! The data directory: the files servers logged or saved and clients can send, with upload
//! from the browser (streamed in chunks, with a progress bar), download, and "send from the
//! selected client".

use crate::vec_map::VecMap;

use shared::FileInfo;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::format;
use crate::state::Upload;

/// The client the selected conversation belongs to, if files can be sent from it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSender {
    pub endpoint: u32,
    pub label: String,
    pub udp: bool,
}

pub struct Props {
    /// Bytes per datagram for a UDP send (kept by `App`).
    pub datagram: UseStateHandle<usize>,
    pub files: Vec<FileInfo>,
    pub uploads: VecMap<String, Upload>,
    pub sender: Option<FileSender>,
    pub on_upload: Callback<web_sys::File>,
    pub on_download: Callback<String>,
    pub on_refresh: Callback<()>,
    /// (file, datagram size) to send from `sender`.
    pub on_send: Callback<(String, usize)>,
    /// Where the data directory is.
    pub data_dir: String,
    /// Show a text file of it here.
    pub on_view: Callback<String>,
    /// The text file shown: (name, text).
    pub viewing: Option<std::rc::Rc<(String, String)>>,
    pub on_close_view: Callback<()>,
}

/// A plain function, not a component (its state lives in `App`): each component brings its
/// own copy of yew's lifecycle code into the page (docs/benchmarks.md, "Page size").
pub fn files(props: &Props) -> Html {
    let datagram = props.datagram.clone();
    let on_pick = {
        let on_upload = props.on_upload.clone();
        Callback::from(move |e: Event| {
            let input = e.target_unchecked_into::<HtmlInputElement>();
            if let Some(files) = input.files() {
                for i in 0..files.length() {
                    if let Some(file) = files.get(i) {
                        on_upload.emit(file);
                    }
                }
            }
            input.set_value("");
        })
    };
    let on_datagram = {
        let datagram = datagram.clone();
        Callback::from(move |e: InputEvent| {
            let value = e.target_unchecked_into::<HtmlInputElement>().value();
            datagram.set(value.trim().parse().unwrap_or(1400));
        })
    };
    let on_refresh = props.on_refresh.reform(|_: MouseEvent| ());
    html! {
        <div class="files">
            <h2>{ "Files" }</h2>
            <p class="muted">
                { "The bridge's data directory: what servers logged or saved, and what clients can send." }
                if !props.data_dir.is_empty() {
                    { " It is " }<code id="data-dir">{ &props.data_dir }</code>{ "." }
                }
            </p>
            <div class="composer-row">
                <label class="upload">{ "Upload a file " }
                    <input id="upload-input" type="file" multiple=true onchange={on_pick} />
                </label>
                <button type="button" class="small" onclick={on_refresh}>{ "Refresh" }</button>
            </div>
            { for props.uploads.iter().map(|(name, up)| {
                let state = match (&up.sha256, up.failed) {
                    (_, true) => "failed".to_string(),
                    (Some(sha), _) => format!("done, SHA-256 {}…", &sha[..12.min(sha.len())]),
                    (None, _) => format!("{} of {}", format::bytes(up.bytes as usize), format::bytes(up.size as usize)),
                };
                html! {
                    <div class="upload-progress">
                        <span>{ format!("Upload {name}: {state}") }</span>
                        <progress max={up.size.max(1).to_string()} value={up.bytes.to_string()}></progress>
                    </div>
                }
            }) }
            if let Some(sender) = &props.sender {
                <p class="send-from">
                    { format!("Send buttons send from {}", sender.label) }
                    if sender.udp {
                        <label>{ " in datagrams of " }
                            <input type="text" class="short" value={datagram.to_string()} oninput={on_datagram}
                                   aria-label="Bytes of the file per datagram" />
                            { " bytes" }
                        </label>
                    }
                </p>
            } else {
                <p class="muted">{ "Select a TCP or UDP client to send files from it." }</p>
            }
            <table class="file-table">
                <thead><tr><th>{ "name" }</th><th>{ "size" }</th><th></th></tr></thead>
                <tbody>
                    if props.files.is_empty() {
                        <tr><td colspan="3" class="muted">{ "No files yet." }</td></tr>
                    }
                    { for props.files.iter().map(|f| {
                        let name = f.name.clone();
                        let on_download = props.on_download.reform({ let name = name.clone(); move |_: MouseEvent| name.clone() });
                        let on_view = props.on_view.reform({ let name = name.clone(); move |_: MouseEvent| name.clone() });
                        let on_send = props.on_send.reform({ let name = name.clone(); let size = *datagram; move |_: MouseEvent| (name.clone(), size) });
                        html! {
                            <tr data-file={name.clone()}>
                                <td>{ &f.name }</td>
                                <td>{ format::bytes(f.bytes as usize) }</td>
                                <td>
                                    if f.bytes <= 256 * 1024 {
                                        <button type="button" class="small view-file" onclick={on_view}
                                                title="Show it here, as text">{ "View" }</button>
                                    }
                                    <button type="button" class="small" onclick={on_download}>{ "Download" }</button>
                                    <button type="button" class="small send-file" disabled={props.sender.is_none()} onclick={on_send}>{ "Send" }</button>
                                </td>
                            </tr>
                        }
                    }) }
                </tbody>
            </table>
            if let Some(viewing) = &props.viewing {
                <div class="file-view">
                    <div class="lab-head">
                        <strong>{ &viewing.0 }</strong>
                        <button type="button" class="small" aria-label="Close the file"
                                onclick={props.on_close_view.reform(|_: MouseEvent| ())}>{ "✕" }</button>
                    </div>
                    <pre id="file-text">{ &viewing.1 }</pre>
                </div>
            }
        </div>
    }
}
