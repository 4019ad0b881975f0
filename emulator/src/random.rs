//! Random values for the emulated cloud: signing keys, passwords, header secrets.
//!
//! Everything comes from the operating system's generator through ring, the
//! same source rustls uses; a failure there leaves nothing sensible to do.

use ring::rand::{SecureRandom, SystemRandom};

/// `N` random bytes.
pub(crate) fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .expect("the operating system's random number generator failed");
    out
}

/// 32 random hex characters (128 bits): a password or a header secret.
pub(crate) fn secret() -> String {
    bytes::<16>().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_are_hex_and_differ() {
        let (a, b) = (super::secret(), super::secret());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
