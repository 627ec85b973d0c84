//! `use_slow_motion`: lecture mode's slow motion, on or off, paused or going on. While it is
//! on, the bridge connection (`use_bridge`) shows events one at a time, so that a lecturer can
//! point at each (paused, only when stepped); turning it off shows the waiting ones at once.

use yew::prelude::*;

use super::Bridge;

/// What the top bar shows of slow motion, and its buttons.
#[derive(Clone, PartialEq)]
pub struct SlowMotion {
    pub on: bool,
    pub paused: bool,
    pub toggle: Callback<()>,
    pub pause: Callback<()>,
    pub step: Callback<()>,
}

#[hook]
pub fn use_slow_motion(bridge: &Bridge) -> SlowMotion {
    let slow = use_state(|| false);
    let paused = use_state(|| false);
    let toggle = {
        let (slow, paused, bridge) = (slow.clone(), paused.clone(), bridge.clone());
        Callback::from(move |()| {
            bridge.set_slow_motion(!*slow);
            slow.set(!*slow);
            paused.set(false);
        })
    };
    let pause = {
        let (paused, bridge) = (paused.clone(), bridge.clone());
        Callback::from(move |()| {
            bridge.set_slow_paused(!*paused);
            paused.set(!*paused);
        })
    };
    let step = {
        let bridge = bridge.clone();
        Callback::from(move |()| bridge.slow_step())
    };
    SlowMotion {
        on: *slow,
        paused: *paused,
        toggle,
        pause,
        step,
    }
}
