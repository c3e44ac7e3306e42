//! Messages, grouped by who sends them to whom.
//!
//! # Message flow
//! ```text
//! agent                         relay                          console
//!   |-- Hello{Agent} ------------->|                               |
//!   |<----------- HelloReply ------|                               |
//!   |-- AgentToRelay::OpenSlot --->|                               |  reason the user gave, if any
//!   |<-- RelayToAgent::SlotOpened -|     (agent shows slot+secret) |
//!   |                              |<------------ Hello{Console} --|
//!   |                              |------------- HelloReply ----->|
//!   |                              |<-- ConsoleToRelay::Claim -----|  slot, token, scopes (role-checked)
//!   |                              |--- RelayToConsole::Redirect ->|  (a cluster: another node holds
//!   |                              |                               |   the slot; the console claims
//!   |                              |                               |   there, once)
//!   |<-- RelayToAgent::Claimed ----|                               |  verified name, org, role
//!   |-- AgentToRelay::Accept ----->|--- RelayToConsole::Claimed -->|  (or Decline: refused before pairing)
//!   |                              |   + reason, session record id |
//!   |<=========== spliced stream 0: bytes copied blindly ==========>|
//!   |   PairingMsg::Spake / PairingMsg::Confirm (plain frames)      |
//!   |   then sealed: ConsentRequest -> ConsentDecision, End/Ended   |
//!   |   later, any time: AskMore -> MoreDecision (one at a time)    |
//!   |   GrantChanged when the user takes something back             |
//!   |<=========== spliced stream n (console opens more) ===========>|
//!   |   StreamOpen{n} (plain), then sealed Request -> Response      |
//!   |-- AgentToRelay::Report(..) ->|  audit facts, never content   |
//! ```
//! The relay parses only the frames on its own control streams (`Hello`, `*ToRelay`). Once a stream is
//! spliced it copies bytes without looking at them.
//!
//! A frame that fails to open or decode on any session stream, or a stream that breaks the
//! `StreamOpen`, one request, one answer shape, ends the session: the agent ends it as
//! [`EndReason::ProtocolError`] (reported to the relay, so the audit has it) and tells the console
//! in `Ended`; a console that sees such a frame sends [`ConsoleToAgent::ProtocolError`] on stream 0,
//! and the agent ends the session the same way.
//!
//! # Layout
//! The trust boundary is in the file names:
//! - [`relay`]: what the relay parses (`Hello`, the `*ToRelay` / `RelayTo*` control messages and
//!   what they carry: identities, roles, tiers, errors, the end reasons an agent reports). A relay
//!   change that needs a type from anywhere else is a relay reading session content.
//! - [`e2e`]: what only the agent and the console see (sealed stream 0, requests and answers, and
//!   the plain `StreamOpen`, which the relay copies without parsing).
//!
//! Both are re-exported here, so `tether_proto::msg::X` names every message.

pub mod e2e;
pub mod relay;

pub use e2e::*;
pub use relay::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use proptest::prelude::*;

    use crate::fleet::tests::round_trip;

    proptest! {
        #[test] fn hello(m: Hello) { round_trip(m)?; }
        #[test] fn hello_reply(m: HelloReply) { round_trip(m)?; }
        #[test] fn agent_to_relay(m: AgentToRelay) { round_trip(m)?; }
        #[test] fn relay_to_agent(m: RelayToAgent) { round_trip(m)?; }
        #[test] fn console_to_relay(m: ConsoleToRelay) { round_trip(m)?; }
        #[test] fn relay_to_console(m: RelayToConsole) { round_trip(m)?; }
        #[test] fn stream_open(m: StreamOpen) { round_trip(m)?; }
        #[test] fn console_to_agent(m: ConsoleToAgent) { round_trip(m)?; }
        #[test] fn agent_to_console(m: AgentToConsole) { round_trip(m)?; }
        #[test] fn request(m: Request) { round_trip(m)?; }
        #[test] fn pairing(m: crate::pairing::PairingMsg) { round_trip(m)?; }
        #[test] fn screen_msg(m: crate::screen::ScreenMsg) { round_trip(m)?; }
        #[test] fn viewer_msg(m: crate::screen::ViewerMsg) { round_trip(m)?; }
        #[test] fn input_event(m: crate::screen::InputEvent) { round_trip(m)?; }
        #[test] fn input_reply(m: crate::screen::InputReply) { round_trip(m)?; }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = codec::decode::<RelayToAgent>(&bytes);
            let _ = codec::decode::<Response>(&bytes);
            let _ = codec::from_body::<ConsoleToRelay>(&bytes);
        }
    }

    /// `Redirect` came last: the variants before it keep their tags, so what an older relay
    /// sends decodes as it did, and a redirect's tag is the next one.
    #[test]
    fn the_redirect_keeps_older_console_answers_decoding() {
        let invitations = codec::to_body(&RelayToConsole::Invitations(Vec::new())).unwrap();
        let redirect = codec::to_body(&RelayToConsole::Redirect(NodeAddress {
            node: "node-a".into(),
            addr: "127.0.0.1:4433".into(),
        }))
        .unwrap();
        assert_eq!(
            invitations[0] + 1,
            redirect[0],
            "{invitations:?} {redirect:?}"
        );
        let old: RelayToConsole = codec::from_body(&invitations).unwrap();
        assert_eq!(old, RelayToConsole::Invitations(Vec::new()));
    }

    // `Response` carries a full inventory, whose strategy needs a large stack.
    #[test]
    fn response() {
        crate::fleet::tests::round_trip_all::<Response>(4);
    }
}
