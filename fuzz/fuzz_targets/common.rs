//! How a fuzz input is cut into read sizes and payload.

/// The first byte's low three bits say how many read sizes follow (0: one
/// read of everything); each following byte is a size of 1 to 256. The rest
/// of the input is the payload.
pub fn chunks_and_payload(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return (Vec::new(), data);
    };
    let n = usize::from(first & 7).min(rest.len());
    let sizes = rest[..n].iter().map(|&b| usize::from(b) + 1).collect();
    (sizes, &rest[n..])
}

/// Whether `a` is a prefix of `b` or `b` of `a`.
#[allow(dead_code)] // the scanner target compares offsets instead
pub fn one_prefixes_the_other(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// A position in a payload of `len` bytes, taken from the input's last two
/// bytes (so it moves independently of the read sizes at the front).
#[allow(dead_code)] // used by the requests target only
pub fn cut_point(data: &[u8], len: usize) -> usize {
    let seed = match data {
        [.., a, b] => usize::from(*a) << 8 | usize::from(*b),
        _ => 0,
    };
    seed % (len + 1)
}
