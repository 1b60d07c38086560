//! The VICI wire format (strongSwan's `src/libcharon/plugins/vici/README.md`).
//!
//! A packet is a 32-bit big-endian length and a payload; the payload is a packet type, for
//! named types an 8-bit-length name, and then a message: a sequence of elements. Sections nest;
//! keys and list items carry 16-bit-length byte strings.

use std::fmt;

/// Packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PacketType {
    CmdRequest = 0,
    CmdResponse = 1,
    CmdUnknown = 2,
    EventRegister = 3,
    EventUnregister = 4,
    EventConfirm = 5,
    EventUnknown = 6,
    Event = 7,
}

impl PacketType {
    fn from_u8(b: u8) -> Option<Self> {
        use PacketType::*;
        Some(match b {
            0 => CmdRequest,
            1 => CmdResponse,
            2 => CmdUnknown,
            3 => EventRegister,
            4 => EventUnregister,
            5 => EventConfirm,
            6 => EventUnknown,
            7 => Event,
            _ => return None,
        })
    }
    fn named(self) -> bool {
        matches!(self, PacketType::CmdRequest | PacketType::EventRegister | PacketType::EventUnregister | PacketType::Event)
    }
}

const SECTION_START: u8 = 1;
const SECTION_END: u8 = 2;
const KEY_VALUE: u8 = 3;
const LIST_START: u8 = 4;
const LIST_ITEM: u8 = 5;
const LIST_END: u8 = 6;

/// One value of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Element {
    Value(Vec<u8>),
    List(Vec<Vec<u8>>),
    Section(Message),
}

/// An ordered message: VICI keeps the order of keys, and strongSwan reads some of it in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message(pub Vec<(String, Element)>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed VICI message: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

impl Message {
    pub fn new() -> Self {
        Message(Vec::new())
    }
    /// Adds a key with a value (builder style).
    pub fn kv(mut self, key: &str, value: impl AsRef<[u8]>) -> Self {
        self.0.push((key.to_string(), Element::Value(value.as_ref().to_vec())));
        self
    }
    pub fn list<I, V>(mut self, key: &str, items: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: AsRef<[u8]>,
    {
        self.0.push((key.to_string(), Element::List(items.into_iter().map(|v| v.as_ref().to_vec()).collect())));
        self
    }
    pub fn section(mut self, key: &str, m: Message) -> Self {
        self.0.push((key.to_string(), Element::Section(m)));
        self
    }
    pub fn get(&self, key: &str) -> Option<&Element> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    /// A value as text ("" when absent or not a value).
    pub fn str(&self, key: &str) -> &str {
        match self.get(key) {
            Some(Element::Value(v)) => std::str::from_utf8(v).unwrap_or(""),
            _ => "",
        }
    }
    pub fn sec(&self, key: &str) -> Option<&Message> {
        match self.get(key) {
            Some(Element::Section(m)) => Some(m),
            _ => None,
        }
    }
    pub fn strs(&self, key: &str) -> Vec<String> {
        match self.get(key) {
            Some(Element::List(items)) => items.iter().map(|i| String::from_utf8_lossy(i).into_owned()).collect(),
            _ => Vec::new(),
        }
    }
    /// The sections of this message, in order.
    pub fn sections(&self) -> impl Iterator<Item = (&str, &Message)> {
        self.0.iter().filter_map(|(k, v)| match v {
            Element::Section(m) => Some((k.as_str(), m)),
            _ => None,
        })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        for (k, v) in &self.0 {
            match v {
                Element::Value(val) => {
                    out.push(KEY_VALUE);
                    put_name(out, k);
                    put_value(out, val);
                }
                Element::List(items) => {
                    out.push(LIST_START);
                    put_name(out, k);
                    for i in items {
                        out.push(LIST_ITEM);
                        put_value(out, i);
                    }
                    out.push(LIST_END);
                }
                Element::Section(m) => {
                    out.push(SECTION_START);
                    put_name(out, k);
                    m.encode(out);
                    out.push(SECTION_END);
                }
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        let mut r = Reader { b: bytes, at: 0 };
        let m = decode_level(&mut r, 0)?;
        if r.at != bytes.len() {
            return Err(DecodeError("unbalanced section end".into()));
        }
        Ok(m)
    }
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    // Names are at most 255 bytes by the format; ours are short literals and ids.
    let n = &name.as_bytes()[..name.len().min(255)];
    out.push(n.len() as u8);
    out.extend_from_slice(n);
}

fn put_value(out: &mut Vec<u8>, v: &[u8]) {
    let v = &v[..v.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(v.len() as u16).to_be_bytes());
    out.extend_from_slice(v);
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn u8(&mut self) -> Result<u8, DecodeError> {
        let v = *self.b.get(self.at).ok_or_else(|| DecodeError("truncated".into()))?;
        self.at += 1;
        Ok(v)
    }
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        if self.at + n > self.b.len() {
            return Err(DecodeError("truncated".into()));
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn name(&mut self) -> Result<String, DecodeError> {
        let n = self.u8()? as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    fn value(&mut self) -> Result<Vec<u8>, DecodeError> {
        let hi = self.u8()? as usize;
        let lo = self.u8()? as usize;
        Ok(self.take(hi << 8 | lo)?.to_vec())
    }
}

fn decode_level(r: &mut Reader<'_>, depth: usize) -> Result<Message, DecodeError> {
    if depth > 32 {
        return Err(DecodeError("sections nest too deep".into()));
    }
    let mut m = Message::new();
    while r.at < r.b.len() {
        match r.u8()? {
            KEY_VALUE => {
                let k = r.name()?;
                let v = r.value()?;
                m.0.push((k, Element::Value(v)));
            }
            SECTION_START => {
                let k = r.name()?;
                let inner = decode_level(r, depth + 1)?;
                m.0.push((k, Element::Section(inner)));
            }
            SECTION_END => {
                if depth == 0 {
                    return Err(DecodeError("section end at top level".into()));
                }
                return Ok(m);
            }
            LIST_START => {
                let k = r.name()?;
                let mut items = Vec::new();
                loop {
                    match r.u8()? {
                        LIST_ITEM => items.push(r.value()?),
                        LIST_END => break,
                        other => return Err(DecodeError(format!("element {other} inside a list"))),
                    }
                }
                m.0.push((k, Element::List(items)));
            }
            other => return Err(DecodeError(format!("unknown element type {other}"))),
        }
    }
    if depth > 0 {
        return Err(DecodeError("section not closed".into()));
    }
    Ok(m)
}

/// One packet: its type, its name (for named types) and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub kind: PacketType,
    pub name: String,
    pub message: Message,
}

impl Packet {
    /// The framed bytes: length, type, name, message.
    pub fn encode(&self) -> Vec<u8> {
        let mut payload = vec![self.kind as u8];
        if self.kind.named() {
            put_name(&mut payload, &self.name);
        }
        self.message.encode(&mut payload);
        let mut out = (payload.len() as u32).to_be_bytes().to_vec();
        out.extend(payload);
        out
    }

    /// Decodes a payload (the bytes after the length).
    pub fn decode(payload: &[u8]) -> Result<Packet, DecodeError> {
        let mut r = Reader { b: payload, at: 0 };
        let kind = PacketType::from_u8(r.u8()?).ok_or_else(|| DecodeError("unknown packet type".into()))?;
        let name = if kind.named() { r.name()? } else { String::new() };
        let message = Message::decode(&payload[r.at..])?;
        Ok(Packet { kind, name, message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the VICI README: a message with a key, a section with a list, as bytes.
    #[test]
    fn encodes_the_readme_example() {
        let m = Message::new().kv("key1", "value1").section("section1", Message::new().section("sub-section", Message::new().kv("key2", "value2")).list("list1", ["item1", "item2"]));
        let mut b = Vec::new();
        m.encode(&mut b);
        let want: Vec<u8> = [
            &[3, 4][..],
            b"key1",
            &[0, 6],
            b"value1",
            &[1, 8],
            b"section1",
            &[1, 11],
            b"sub-section",
            &[3, 4],
            b"key2",
            &[0, 6],
            b"value2",
            &[2],
            &[4, 5],
            b"list1",
            &[5, 0, 5],
            b"item1",
            &[5, 0, 5],
            b"item2",
            &[6],
            &[2],
        ]
        .concat();
        assert_eq!(b, want);
        assert_eq!(Message::decode(&want).unwrap(), m);
    }

    #[test]
    fn refuses_malformed_input() {
        for bad in [&[1u8, 1, b'a'][..], &[2], &[3, 1, b'k', 0, 9, b'x'], &[4, 1, b'l', 3], &[9]] {
            assert!(Message::decode(bad).is_err(), "{bad:?}");
        }
        assert!(Packet::decode(&[42]).is_err());
    }

    #[test]
    fn packets_round_trip() {
        let p = Packet { kind: PacketType::CmdRequest, name: "list-sas".into(), message: Message::new().kv("noblock", "yes") };
        let bytes = p.encode();
        assert_eq!(&bytes[..4], &((bytes.len() - 4) as u32).to_be_bytes());
        assert_eq!(&bytes[4..14], b"\x00\x08list-sas");
        assert_eq!(Packet::decode(&bytes[4..]).unwrap(), p);
        let confirm = Packet { kind: PacketType::EventConfirm, name: String::new(), message: Message::new() };
        assert_eq!(confirm.encode(), vec![0, 0, 0, 1, 5]);
    }
}
