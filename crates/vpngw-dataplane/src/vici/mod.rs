//! A small VICI client: the codec ([`codec`]) and an async connection over charon's Unix socket.
//!
//! Why our own and not `rsvici`: rsvici maps messages through serde into typed structs, which
//! hides the order of keys and makes it awkward to count calls and to replay recorded byte
//! exchanges in tests; the format is small enough (codec and client are about 400 lines without tests) to own outright.
//!
//! One [`Client`] is one socket. A command is one request and one response ("one VICI call");
//! streaming commands (`list-sas`, `list-conns`) answer with events before their response,
//! so a client registers for those events once, when it connects.

pub mod codec;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

pub use codec::{Element, Message, Packet, PacketType};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// VICI calls made by every client of this process (for benchmarks and tests).
pub static CALLS: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, thiserror::Error)]
pub enum ViciError {
    #[error("VICI socket: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Decode(#[from] codec::DecodeError),
    #[error("charon does not know the command {0}")]
    UnknownCommand(String),
    #[error("charon does not know the event {0}")]
    UnknownEvent(String),
    #[error("{cmd} failed: {msg}")]
    Failed { cmd: String, msg: String },
    #[error("unexpected VICI packet {0:?}")]
    Unexpected(PacketType),
}

pub type Result<T> = std::result::Result<T, ViciError>;

/// Packets larger than this are refused (charon's own limit is 512 KiB).
const MAX_PACKET: usize = 8 << 20;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One connection to charon.
pub struct Client {
    io: Box<dyn Stream>,
    /// Events that arrived while a command waited for its response (on event connections).
    pending: std::collections::VecDeque<(String, Message)>,
}

impl Client {
    pub async fn connect(path: &Path) -> Result<Client> {
        let s = tokio::net::UnixStream::connect(path).await?;
        Ok(Client::over(s))
    }

    /// A client over any byte stream (tests replay recorded exchanges through this).
    pub fn over<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(s: S) -> Client {
        Client { io: Box::new(s), pending: Default::default() }
    }

    async fn send(&mut self, p: &Packet) -> Result<()> {
        self.io.write_all(&p.encode()).await?;
        Ok(())
    }

    async fn recv(&mut self) -> Result<Packet> {
        let mut len = [0u8; 4];
        self.io.read_exact(&mut len).await?;
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 || len > MAX_PACKET {
            return Err(codec::DecodeError(format!("packet length {len}")).into());
        }
        let mut buf = vec![0u8; len];
        self.io.read_exact(&mut buf).await?;
        Ok(Packet::decode(&buf)?)
    }

    /// Sends a command and returns its response. A response with `success = no` is an error
    /// carrying charon's `errmsg`.
    pub async fn call(&mut self, cmd: &str, msg: Message) -> Result<Message> {
        let (_, resp) = self.stream(cmd, None, msg).await?;
        Ok(resp)
    }

    /// Sends several commands at once and reads their responses in order: charon handles a
    /// connection's requests one after another, so pipelining saves a round trip per command.
    /// Each command counts as one call.
    pub async fn call_many(&mut self, reqs: Vec<(&str, Message)>) -> Result<Vec<Result<Message>>> {
        let mut bytes = Vec::new();
        let names: Vec<String> = reqs.iter().map(|(c, _)| c.to_string()).collect();
        for (cmd, msg) in reqs {
            bytes.extend(Packet { kind: PacketType::CmdRequest, name: cmd.into(), message: msg }.encode());
        }
        CALLS.fetch_add(names.len() as u64, Ordering::Relaxed);
        self.io.write_all(&bytes).await?;
        let mut out = Vec::with_capacity(names.len());
        for cmd in names {
            let answer = loop {
                let p = self.recv().await?;
                match p.kind {
                    PacketType::CmdResponse if p.message.str("success") == "no" => break Err(ViciError::Failed { cmd: cmd.clone(), msg: p.message.str("errmsg").to_string() }),
                    PacketType::CmdResponse => break Ok(p.message),
                    PacketType::CmdUnknown => break Err(ViciError::UnknownCommand(cmd.clone())),
                    PacketType::Event => self.pending.push_back((p.name, p.message)),
                    other => return Err(ViciError::Unexpected(other)),
                }
            };
            out.push(answer);
        }
        Ok(out)
    }

    /// Sends a command and collects the `event` packets it streams before its response.
    pub async fn stream(&mut self, cmd: &str, event: Option<&str>, msg: Message) -> Result<(Vec<Message>, Message)> {
        CALLS.fetch_add(1, Ordering::Relaxed);
        self.send(&Packet { kind: PacketType::CmdRequest, name: cmd.into(), message: msg }).await?;
        let mut events = Vec::new();
        loop {
            let p = self.recv().await?;
            match p.kind {
                PacketType::CmdResponse => {
                    let m = p.message;
                    if m.str("success") == "no" {
                        return Err(ViciError::Failed { cmd: cmd.into(), msg: m.str("errmsg").to_string() });
                    }
                    return Ok((events, m));
                }
                PacketType::CmdUnknown => return Err(ViciError::UnknownCommand(cmd.into())),
                PacketType::Event if Some(p.name.as_str()) == event => events.push(p.message),
                PacketType::Event => self.pending.push_back((p.name, p.message)),
                other => return Err(ViciError::Unexpected(other)),
            }
        }
    }

    /// Registers for an event; its packets then arrive through [`Client::next_event`] (or are
    /// collected by [`Client::stream`]).
    pub async fn register(&mut self, event: &str) -> Result<()> {
        self.send(&Packet { kind: PacketType::EventRegister, name: event.into(), message: Message::new() }).await?;
        loop {
            let p = self.recv().await?;
            match p.kind {
                PacketType::EventConfirm => return Ok(()),
                PacketType::EventUnknown => return Err(ViciError::UnknownEvent(event.into())),
                PacketType::Event => self.pending.push_back((p.name, p.message)),
                other => return Err(ViciError::Unexpected(other)),
            }
        }
    }

    /// The next event on a connection registered for events.
    pub async fn next_event(&mut self) -> Result<(String, Message)> {
        if let Some(e) = self.pending.pop_front() {
            return Ok(e);
        }
        loop {
            let p = self.recv().await?;
            if p.kind == PacketType::Event {
                return Ok((p.name, p.message));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that answers each request with recorded packets, checking the request bytes.
    async fn replay(mut peer: tokio::net::UnixStream, script: Vec<(Vec<u8>, Vec<Vec<u8>>)>) {
        for (expect, answers) in script {
            let mut got = vec![0u8; expect.len()];
            peer.read_exact(&mut got).await.unwrap();
            assert_eq!(got, expect, "request bytes");
            for a in answers {
                peer.write_all(&a).await.unwrap();
            }
        }
    }

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut v = (payload.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    /// A `list-sas` exchange shaped like charon's (one IKE_SA with one CHILD_SA, reduced to the
    /// keys the reconciler reads). `tests/recorded.rs` replays a real recorded session.
    #[tokio::test]
    async fn list_sas_streams_events_before_the_response() {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let register = framed(b"\x03\x07list-sa");
        let confirm = framed(b"\x05");
        let request = framed(b"\x00\x08list-sas\x03\x07noblock\x00\x03yes");
        let event = framed(
            &[
                &b"\x07\x07list-sa"[..],
                b"\x01\x0evco-1-4a2f0c1d",
                b"\x03\x08uniqueid\x00\x011",
                b"\x03\x05state\x00\x0bESTABLISHED",
                b"\x01\x09child-sas",
                b"\x01\x10vco-1-4a2f0c1d-1",
                b"\x03\x05state\x00\x09INSTALLED",
                b"\x02\x02\x02",
            ]
            .concat(),
        );
        let response = framed(b"\x01");
        let server = tokio::spawn(replay(b, vec![(register, vec![confirm]), (request, vec![event, response])]));
        let mut c = Client::over(a);
        c.register("list-sa").await.unwrap();
        let (events, resp) = c.stream("list-sas", Some("list-sa"), Message::new().kv("noblock", "yes")).await.unwrap();
        assert_eq!(resp, Message::new());
        assert_eq!(events.len(), 1);
        let (name, ike) = events[0].sections().next().unwrap();
        assert_eq!(name, "vco-1-4a2f0c1d");
        assert_eq!(ike.str("state"), "ESTABLISHED");
        let child = ike.sec("child-sas").unwrap().sections().next().unwrap().1;
        assert_eq!(child.str("state"), "INSTALLED");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn pipelined_commands_answer_in_order() {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let mut both = framed(b"\x00\x07version");
        both.extend(framed(b"\x00\x0bunload-conn\x03\x04name\x00\x01x"));
        let ok = framed(b"\x01\x03\x06daemon\x00\x06charon");
        let failed = framed(b"\x01\x03\x07success\x00\x02no\x03\x06errmsg\x00\x04nope");
        let server = tokio::spawn(replay(b, vec![(both, vec![ok, failed])]));
        let mut c = Client::over(a);
        let before = CALLS.load(Ordering::Relaxed);
        let answers = c.call_many(vec![("version", Message::new()), ("unload-conn", Message::new().kv("name", "x"))]).await.unwrap();
        assert_eq!(answers[0].as_ref().unwrap().str("daemon"), "charon");
        assert_eq!(answers[1].as_ref().unwrap_err().to_string(), "unload-conn failed: nope");
        assert!(CALLS.load(Ordering::Relaxed) >= before + 2);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn failures_carry_charons_message() {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let request = framed(b"\x00\x0bunload-conn\x03\x04name\x00\x01x");
        let response = framed(b"\x01\x03\x07success\x00\x02no\x03\x06errmsg\x00\x18connection 'x' not found");
        let unknown = framed(b"\x02");
        let request2 = framed(b"\x00\x04nope");
        let server = tokio::spawn(replay(b, vec![(request, vec![response]), (request2, vec![unknown])]));
        let mut c = Client::over(a);
        let err = c.call("unload-conn", Message::new().kv("name", "x")).await.unwrap_err();
        assert_eq!(err.to_string(), "unload-conn failed: connection 'x' not found");
        assert!(matches!(c.call("nope", Message::new()).await, Err(ViciError::UnknownCommand(_))));
        server.await.unwrap();
    }
}
