//! Resource ids in Alibaba's shape: a prefix, a dash, 21 lower-case letters and digits.

use rand::Rng;

pub fn new_id(prefix: &str) -> String {
    vpngw_model::id::generate(prefix)
}

/// A request id: an upper-case UUID, as Alibaba's.
pub fn request_id() -> String {
    // From the thread's RNG: one syscall per request for getrandom showed in profiles.
    let bytes: [u8; 16] = rand::random();
    uuid::Builder::from_random_bytes(bytes).into_uuid().hyphenated().encode_upper(&mut uuid::Uuid::encode_buffer()).to_string()
}

/// A random secret of `len` characters from letters and digits.
pub fn secret(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..len).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}
