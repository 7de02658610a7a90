//! Checks on Ed25519 signatures that aaa makes itself rather than leave to a feature flag.

/// L, the order of Ed25519's prime-order subgroup, little-endian.
pub(crate) const ORDER: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// Whether the little-endian scalar `s` (a signature's second half) is below L, as RFC 8032
/// §5.1.7 requires. `ed25519-dalek` checks it too, but not with its `legacy_compatibility`
/// feature, which any crate in the final build can turn on (features unify): then `S + L`
/// would verify, a second form of every signature.
pub(crate) fn s_below_order(s: &[u8; 32]) -> bool {
    s.iter()
        .rev()
        .zip(ORDER.iter().rev())
        .find(|(s, l)| s != l)
        .is_some_and(|(s, l)| s < l)
}

/// [`s_below_order`] for the `S` half of a 64-byte signature.
pub(crate) fn signature_s_below_order(signature: &[u8; 64]) -> bool {
    signature.last_chunk::<32>().is_some_and(s_below_order)
}

/// Adds L to the little-endian scalar in `s` (32 bytes): the same scalar, not in canonical form,
/// as a forger of a second signature would write it.
#[cfg(test)]
pub(crate) fn add_order(s: &mut [u8]) {
    let mut carry = 0u16;
    for (s, l) in s.iter_mut().zip(ORDER) {
        let v = u16::from(*s) + u16::from(l) + carry;
        *s = v as u8;
        carry = v >> 8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s_below_order_compares_as_little_endian_numbers() {
        let mut below = ORDER;
        below[0] -= 1;
        let mut above = ORDER;
        above[0] += 1;
        let mut high = [0u8; 32];
        high[31] = 0x10; // 2^252, below L although its top byte equals L's
        let mut low_byte_above = [0u8; 32];
        low_byte_above[0] = 0xff; // 255 < L: only the most significant difference counts
        assert!(s_below_order(&[0; 32]));
        assert!(s_below_order(&below));
        assert!(s_below_order(&high));
        assert!(s_below_order(&low_byte_above));
        assert!(!s_below_order(&ORDER));
        assert!(!s_below_order(&above));
        assert!(!s_below_order(&[0xff; 32]));
    }

    #[test]
    fn the_second_half_of_a_signature_is_checked() {
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(&ORDER); // R is not S
        assert!(signature_s_below_order(&signature));
        signature[32..].copy_from_slice(&ORDER);
        assert!(!signature_s_below_order(&signature));
    }
}
