//! Keeps `docs/protocol.md` true: every JSON example in it must parse as the message it claims
//! to be, payload previews must match their bytes, and every message type, command and event
//! kind must have an example.

use std::collections::BTreeSet;

use shared::{ClientMessage, Command, Event, Outcome, ServerMessage};

fn examples(direction: &str) -> Vec<String> {
    let doc = include_str!("../../docs/protocol.md");
    let fence = format!("```json {direction}\n");
    doc.split(&fence)
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap().trim().to_string())
        .collect()
}

#[test]
fn every_message_to_the_bridge_parses_and_each_command_is_shown() {
    let mut seen = BTreeSet::new();
    for text in examples("to-bridge") {
        let message: ClientMessage =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        match message {
            ClientMessage::Hello(_) => seen.insert("hello"),
            ClientMessage::Request(request) => seen.insert(request.command.name()),
        };
    }
    let all = [
        "hello",
        Command::Reset.name(),
        "tcp_server_start",
        "udp_server_start",
        "tcp_client_connect",
        "udp_client_open",
        "send",
        "shutdown_write",
        "close",
        "send_file",
        "list_files",
        "fernet_key",
        "compare",
        "fetch_send",
        "upload_start",
        "upload_chunk",
        "upload_finish",
        "impair",
        "python_program",
        "program_save",
        "file_read",
        "program_run",
        "program_input",
        "program_source",
        "trace_attach",
        "trace_records",
        "trace_exit",
        "check_list",
        "check_run",
        "capture_save",
    ];
    for name in all {
        assert!(
            seen.contains(name),
            "docs/protocol.md has no example of {name}"
        );
    }
}

#[test]
fn every_message_from_the_bridge_parses_and_each_kind_is_shown() {
    let mut types = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    let mut check_events = |events: &[Event]| {
        for event in events {
            kinds.insert(event.kind.name());
            let packet = match &event.kind {
                shared::EventKind::Packet(p) => Some(&p.data),
                _ => None,
            };
            if let Some(data) = event.kind.data().or(packet) {
                let bytes = data.bytes().expect("valid base64");
                assert_eq!(bytes.len() + data.omitted, data.len);
                if data.omitted == 0 {
                    assert_eq!(String::from_utf8_lossy(&bytes), data.preview);
                }
            }
        }
    };
    for text in examples("from-bridge") {
        let message: ServerMessage =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        let name = match &message {
            ServerMessage::Welcome(welcome) => {
                check_events(&welcome.snapshot.events);
                "welcome"
            }
            ServerMessage::Reply(reply) => match reply.outcome {
                Outcome::Ok(_) => "reply ok",
                Outcome::Error(_) => "reply error",
            },
            ServerMessage::Events { events } => {
                let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
                assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
                check_events(events);
                "events"
            }
            ServerMessage::Missed { .. } => "missed",
            ServerMessage::Fatal { .. } => "fatal",
        };
        types.insert(name);
        // What the bridge writes must read back the same.
        let again = serde_json::to_string(&message).unwrap();
        assert_eq!(
            serde_json::from_str::<ServerMessage>(&again).unwrap(),
            message
        );
    }
    for name in [
        "welcome",
        "reply ok",
        "reply error",
        "events",
        "missed",
        "fatal",
    ] {
        assert!(
            types.contains(name),
            "docs/protocol.md has no example of {name}"
        );
    }
    for kind in [
        "socket",
        "bind",
        "listen",
        "backlog",
        "accept",
        "connecting",
        "connect",
        "send",
        "recv",
        "send_to",
        "recv_from",
        "eof",
        "shutdown",
        "close",
        "timeout",
        "error",
        "reset",
        "waiting",
        "call",
        "output",
        "exit",
        "dropped",
        "check_started",
        "check_step",
        "packet",
    ] {
        assert!(kinds.contains(kind), "docs/protocol.md has no {kind} event");
    }
}

/// The page writes its commands and recordings with its own small writer (`json_out`), not
/// serde: for every example here, both must write the same JSON, member for member.
#[test]
fn the_pages_writer_writes_every_example_as_serde_does() {
    use shared::json::{parse, same};
    let agree = |ours: &str, theirs: &str| {
        assert!(
            same(&parse(ours).unwrap(), &parse(theirs).unwrap()),
            "ours:  {ours}\nserde: {theirs}"
        );
    };
    let mut commands = 0;
    for text in examples("to-bridge") {
        let message: ClientMessage = serde_json::from_str(&text).unwrap();
        let ours = match &message {
            ClientMessage::Hello(hello) => Some(shared::json_out::hello(hello)),
            ClientMessage::Request(r) => shared::json_out::request(r.id, &r.command),
        };
        // Only `bridge trace`'s commands are not the page's to write.
        if let Some(ours) = ours {
            agree(&ours, &serde_json::to_string(&message).unwrap());
            commands += 1;
        }
    }
    let mut events = Vec::new();
    for text in examples("from-bridge") {
        match serde_json::from_str::<ServerMessage>(&text).unwrap() {
            ServerMessage::Welcome(welcome) => events.extend(welcome.snapshot.events),
            ServerMessage::Events { events: more } => events.extend(more),
            _ => {}
        }
    }
    for event in &events {
        let ours = shared::json_out::recording(5, std::iter::once(event), true);
        let theirs =
            serde_json::to_string(&shared::Recording::new(5, vec![event.clone()])).unwrap();
        agree(&ours, &theirs);
    }
    assert!(
        commands > 20 && events.len() > 30,
        "{commands} commands, {} events",
        events.len()
    );
}
