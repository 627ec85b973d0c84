//! Leaf views: each gets data and callbacks as props and never changes state itself.

pub mod check;
pub mod compare;
pub mod composer;
pub mod console;
pub mod conversation;
pub mod endpoint_list;
pub mod files;
pub mod header;
pub mod lab_card;
pub mod new_endpoint;
pub mod notice;
pub mod programs;
pub mod python;
pub mod replay;
pub mod sequence;
pub mod source;
pub mod tcp_machine;
pub mod timeline;
pub mod trouble;
