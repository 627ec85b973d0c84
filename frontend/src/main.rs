//! Socket Playground frontend. For now a placeholder page; the playground UI (endpoint list,
//! conversation, timeline) is built on top of the `shared` protocol crate in the next issue.

use yew::prelude::*;

/// The root component.
#[function_component]
fn App() -> Html {
    html! {
        <main>
            <h1>{ "Socket Playground" }</h1>
            <p>{ format!("Protocol version {}", shared::PROTOCOL_VERSION) }</p>
        </main>
    }
}

fn main() {
    yew::Renderer::<App>::new().render();
}
