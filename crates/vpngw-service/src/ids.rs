//! Resource ids in Alibaba's shape: a prefix, a dash, 21 lower-case letters and digits.

use rand::Rng;

pub fn new_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let tail: String = (0..21).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
    format!("{prefix}-{tail}")
}

/// A request id: an upper-case UUID, as Alibaba's.
pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string().to_uppercase()
}

/// A random secret of `len` characters from letters and digits.
pub fn secret(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..len).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}
