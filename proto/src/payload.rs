//! Random message payloads of 128–256 bytes, as in grapesy's test.

use rand::Rng;

pub const MIN_PAYLOAD: usize = 128;
pub const MAX_PAYLOAD: usize = 256;

pub fn random_payload() -> Vec<u8> {
    let mut rng = rand::rng();
    let length = rng.random_range(MIN_PAYLOAD..=MAX_PAYLOAD);
    let mut data = vec![0u8; length];
    rng.fill(&mut data[..]);
    data
}
