//! `use_slow_motion`: lecture mode's slow motion, on or off. While it is on, the bridge
//! connection (`use_bridge`) shows events one at a time, so that a lecturer can point at each;
//! turning it off shows the waiting ones at once.

use yew::prelude::*;

use super::Bridge;

/// Whether slow motion is on, and the callback that turns it over.
#[hook]
pub fn use_slow_motion(bridge: &Bridge) -> (bool, Callback<()>) {
    let slow = use_state(|| false);
    let toggle = {
        let (slow, bridge) = (slow.clone(), bridge.clone());
        Callback::from(move |()| {
            bridge.set_slow_motion(!*slow);
            slow.set(!*slow);
        })
    };
    (*slow, toggle)
}
