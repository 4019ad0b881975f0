//! Command classification: the few commands the relay must treat specially.
//! Everything else is [`CommandKind::Other`] and is relayed untouched.

/// What the relay needs to know about a command, from its name alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    Auth,
    Ping,
    Hello,
    Reset,
    Quit,
    Multi,
    Exec,
    Discard,
    Monitor,
    /// `SYNC` / `PSYNC`: the connection turns into a replication stream.
    Sync,
    /// `CLIENT …`: only `CLIENT REPLY` changes how replies flow.
    Client,
    /// `CLUSTER`: its `SLOTS`/`SHARDS`/`NODES`/`REPLICAS` replies name nodes.
    Cluster,
    /// SUBSCRIBE family; see [`SubscribeKind`].
    Subscribe(SubscribeKind),
    /// A command that can block; see [`BlockKind`].
    Blocking(BlockKind),
    Other,
}

/// Where a blocking command keeps its timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// The last argument, in seconds: BLPOP, BRPOP, BRPOPLPUSH, BLMOVE,
    /// BZPOPMIN, BZPOPMAX.
    LastSeconds,
    /// The first argument, in seconds: BLMPOP, BZMPOP.
    FirstSeconds,
    /// The `BLOCK` option, in milliseconds (no option, no block).
    XRead,
    XReadGroup,
}

/// The six commands that produce pub/sub confirmations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscribeKind {
    Subscribe,
    Unsubscribe,
    PSubscribe,
    PUnsubscribe,
    SSubscribe,
    SUnsubscribe,
}

impl SubscribeKind {
    /// The confirmation's first element, as Redis sends it (lower case).
    pub fn name(self) -> &'static [u8] {
        match self {
            SubscribeKind::Subscribe => b"subscribe",
            SubscribeKind::Unsubscribe => b"unsubscribe",
            SubscribeKind::PSubscribe => b"psubscribe",
            SubscribeKind::PUnsubscribe => b"punsubscribe",
            SubscribeKind::SSubscribe => b"ssubscribe",
            SubscribeKind::SUnsubscribe => b"sunsubscribe",
        }
    }

    /// Which of a connection's three subscription sets this kind touches.
    pub fn set(self) -> usize {
        match self {
            SubscribeKind::Subscribe | SubscribeKind::Unsubscribe => 0,
            SubscribeKind::PSubscribe | SubscribeKind::PUnsubscribe => 1,
            SubscribeKind::SSubscribe | SubscribeKind::SUnsubscribe => 2,
        }
    }

    /// Whether the command adds to its set (as opposed to removing from it).
    pub fn adds(self) -> bool {
        matches!(
            self,
            SubscribeKind::Subscribe | SubscribeKind::PSubscribe | SubscribeKind::SSubscribe
        )
    }

    /// Recognises a confirmation name (case-sensitive: Redis sends lower case).
    pub fn from_confirmation(name: &[u8]) -> Option<SubscribeKind> {
        Some(match name {
            b"subscribe" => SubscribeKind::Subscribe,
            b"unsubscribe" => SubscribeKind::Unsubscribe,
            b"psubscribe" => SubscribeKind::PSubscribe,
            b"punsubscribe" => SubscribeKind::PUnsubscribe,
            b"ssubscribe" => SubscribeKind::SSubscribe,
            b"sunsubscribe" => SubscribeKind::SUnsubscribe,
            _ => return None,
        })
    }
}

impl CommandKind {
    /// Classifies a command name, ignoring ASCII case as Redis does.
    pub fn of(name: &[u8]) -> CommandKind {
        // Dispatch on length first: most commands are rejected in one compare.
        let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
        match name.len() {
            4 if is("auth") => CommandKind::Auth,
            4 if is("ping") => CommandKind::Ping,
            4 if is("quit") => CommandKind::Quit,
            4 if is("exec") => CommandKind::Exec,
            4 if is("sync") => CommandKind::Sync,
            5 if is("psync") => CommandKind::Sync,
            5 if is("hello") => CommandKind::Hello,
            5 if is("reset") => CommandKind::Reset,
            5 if is("multi") => CommandKind::Multi,
            5 if is("blpop") || is("brpop") => CommandKind::Blocking(BlockKind::LastSeconds),
            5 if is("xread") => CommandKind::Blocking(BlockKind::XRead),
            6 if is("blmove") => CommandKind::Blocking(BlockKind::LastSeconds),
            6 if is("blmpop") || is("bzmpop") => CommandKind::Blocking(BlockKind::FirstSeconds),
            8 if is("bzpopmin") || is("bzpopmax") => CommandKind::Blocking(BlockKind::LastSeconds),
            10 if is("brpoplpush") => CommandKind::Blocking(BlockKind::LastSeconds),
            10 if is("xreadgroup") => CommandKind::Blocking(BlockKind::XReadGroup),
            6 if is("client") => CommandKind::Client,
            7 if is("discard") => CommandKind::Discard,
            7 if is("cluster") => CommandKind::Cluster,
            7 if is("monitor") => CommandKind::Monitor,
            9 if is("subscribe") => CommandKind::Subscribe(SubscribeKind::Subscribe),
            10 if is("psubscribe") => CommandKind::Subscribe(SubscribeKind::PSubscribe),
            10 if is("ssubscribe") => CommandKind::Subscribe(SubscribeKind::SSubscribe),
            11 if is("unsubscribe") => CommandKind::Subscribe(SubscribeKind::Unsubscribe),
            12 if is("punsubscribe") => CommandKind::Subscribe(SubscribeKind::PUnsubscribe),
            12 if is("sunsubscribe") => CommandKind::Subscribe(SubscribeKind::SUnsubscribe),
            _ => CommandKind::Other,
        }
    }

    /// Whether the relay needs every argument in hand before acting on it.
    pub fn needs_arguments(self) -> bool {
        matches!(
            self,
            CommandKind::Auth
                | CommandKind::Hello
                | CommandKind::Client
                | CommandKind::Cluster
                | CommandKind::Ping
                | CommandKind::Subscribe(_)
                | CommandKind::Blocking(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive() {
        assert_eq!(CommandKind::of(b"AUTH"), CommandKind::Auth);
        assert_eq!(CommandKind::of(b"hElLo"), CommandKind::Hello);
        assert_eq!(
            CommandKind::of(b"PSubscribe"),
            CommandKind::Subscribe(SubscribeKind::PSubscribe)
        );
        assert_eq!(CommandKind::of(b"GET"), CommandKind::Other);
        assert_eq!(CommandKind::of(b"psync"), CommandKind::Sync);
        assert_eq!(CommandKind::of(b"AUTHX"), CommandKind::Other);
        assert_eq!(CommandKind::of(b""), CommandKind::Other);
        assert_eq!(
            CommandKind::of(b"bzPopMax"),
            CommandKind::Blocking(BlockKind::LastSeconds)
        );
        assert_eq!(
            CommandKind::of(b"XREADGROUP"),
            CommandKind::Blocking(BlockKind::XReadGroup)
        );
        assert_eq!(CommandKind::of(b"BLPOPX"), CommandKind::Other);
    }

    #[test]
    fn confirmation_names_round_trip() {
        for kind in [
            SubscribeKind::Subscribe,
            SubscribeKind::Unsubscribe,
            SubscribeKind::PSubscribe,
            SubscribeKind::PUnsubscribe,
            SubscribeKind::SSubscribe,
            SubscribeKind::SUnsubscribe,
        ] {
            assert_eq!(SubscribeKind::from_confirmation(kind.name()), Some(kind));
        }
        assert_eq!(SubscribeKind::from_confirmation(b"message"), None);
    }
}
