//! `use_replay`: plays a recording back. While it plays, each step waits as long as the
//! recorded gap before it (scaled by the speed, between 30 ms and 1.5 s), then shows the next
//! event; a pause, a new speed or a step by hand starts the wait afresh.

use yew::prelude::*;

use crate::state::{Action, State};

/// The player's controls, for the replay bar.
#[derive(Clone, PartialEq)]
pub struct Player {
    pub playing: UseStateHandle<bool>,
    /// In percent of the recorded pace.
    pub speed: UseStateHandle<u32>,
}

#[hook]
pub fn use_replay(state: &UseReducerHandle<State>) -> Player {
    let playing = use_state(|| false);
    let speed = use_state(|| 100u32);
    // Each new wait supersedes the one before: only the newest may step.
    let generation = use_mut_ref(|| 0u64);
    let (dispatch, playing_set) = (state.dispatcher(), playing.clone());
    let replay = state.replay.clone();
    let (is_playing, pace) = (*playing, *speed);
    use_effect_with(
        (is_playing, replay.as_ref().map(|r| r.position), pace),
        move |_| {
            *generation.borrow_mut() += 1;
            let mine = *generation.borrow();
            if let (true, Some(replay)) = (is_playing, replay) {
                let position = replay.position;
                if position >= replay.events.len() {
                    playing_set.set(false);
                } else {
                    let gap_us = match position {
                        0 => 0,
                        p => replay.events[p]
                            .t_us
                            .saturating_sub(replay.events[p - 1].t_us),
                    };
                    let wait_ms = (gap_us / 10 / u64::from(pace.max(1))).clamp(30, 1500);
                    yew::platform::spawn_local(async move {
                        yew::platform::time::sleep(std::time::Duration::from_millis(wait_ms)).await;
                        if *generation.borrow() == mine {
                            dispatch.dispatch(Action::ReplayTo(position + 1));
                        }
                    });
                }
            }
        },
    );
    Player { playing, speed }
}
