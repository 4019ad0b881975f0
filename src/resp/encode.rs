//! The few frames redauth writes itself.

use bytes::{BufMut, Bytes, BytesMut};

/// Encodes a command as a RESP multibulk array.
pub fn command<A: AsRef<[u8]>>(args: &[A]) -> BytesMut {
    let size: usize = args.iter().map(|a| a.as_ref().len() + 16).sum();
    let mut out = BytesMut::with_capacity(size + 16);
    out.put_u8(b'*');
    out.put_slice(args.len().to_string().as_bytes());
    out.put_slice(b"\r\n");
    for arg in args {
        let arg = arg.as_ref();
        out.put_u8(b'$');
        out.put_slice(arg.len().to_string().as_bytes());
        out.put_slice(b"\r\n");
        out.put_slice(arg);
        out.put_slice(b"\r\n");
    }
    out
}

/// `+OK\r\n`.
pub fn ok() -> Bytes {
    Bytes::from_static(b"+OK\r\n")
}

/// An error reply line; CR and LF in `text` become spaces, as Redis does.
pub fn error(text: &str) -> Bytes {
    let clean: String = text
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    Bytes::from(format!("-{clean}\r\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_multibulk() {
        assert_eq!(
            &command(&["AUTH", "u", "p"])[..],
            b"*3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$1\r\np\r\n"
        );
    }

    #[test]
    fn errors_stay_on_one_line() {
        assert_eq!(&error("ERR a\r\nb")[..], b"-ERR a  b\r\n");
    }
}
