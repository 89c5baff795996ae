//! strace's `-s`: the data a call sent or received, cut to fewer bytes.
//!
//! The call families render data with strace's quoting once, at strace's
//! default size ([`CAPTURED`] bytes, `"..."...` when there was more); a
//! smaller size cuts those strings again here. Only data is cut: the second
//! argument of `sendto`/`recvfrom`, the option value of `setsockopt` /
//! `getsockopt` and each `iov_base` of the message calls. Addresses
//! (`sun_path`, `inet_addr("...")`) stay whole, as strace prints them.

/// Bytes of data the call families render per string (strace's default `-s`).
pub const CAPTURED: usize = 32;

/// `args` of `call` with every data string cut to `limit` bytes; `None` if
/// nothing changed.
pub fn cut_args(call: &str, args: &[String], limit: usize) -> Option<Vec<String>> {
    let whole = match call {
        "sendto" | "recvfrom" => Some(1),
        "setsockopt" | "getsockopt" => Some(3),
        _ => None,
    };
    let iovs = matches!(call, "sendmsg" | "recvmsg" | "sendmmsg" | "recvmmsg");
    let mut out: Option<Vec<String>> = None;
    for (i, arg) in args.iter().enumerate() {
        let cut = if whole == Some(i) && arg.starts_with('"') {
            cut_strings(arg, limit, |before| before.is_empty())
        } else if iovs {
            cut_strings(arg, limit, |before| before.ends_with("iov_base="))
        } else {
            None
        };
        if let Some(c) = cut {
            out.get_or_insert_with(|| args.to_vec())[i] = c;
        }
    }
    out
}

/// `text` with each quoted string that `wanted(text before it)` cut to
/// `limit` bytes; `None` if none was longer.
fn cut_strings(text: &str, limit: usize, wanted: impl Fn(&str) -> bool) -> Option<String> {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        if b[i] != b'"' {
            i += 1;
            continue;
        }
        let open = i;
        let (close, cut_at) = scan_quoted(b, open, limit);
        if wanted(&text[..open]) {
            if let Some(at) = cut_at {
                let was_cut = text[close + 1..].starts_with("...");
                out.push_str(&text[copied..at]);
                out.push_str("\"...");
                copied = if was_cut { close + 4 } else { close + 1 };
                changed = true;
            }
        }
        i = close + 1;
    }
    if !changed {
        return None;
    }
    out.push_str(&text[copied..]);
    Some(out)
}

/// For the quoted string opening at `open`: the index of its closing quote,
/// and where its text passes `limit` bytes (if it does).
fn scan_quoted(b: &[u8], open: usize, limit: usize) -> (usize, Option<usize>) {
    let mut i = open + 1;
    let mut bytes = 0;
    let mut cut_at = None;
    while i < b.len() && b[i] != b'"' {
        if bytes == limit && cut_at.is_none() {
            cut_at = Some(i);
        }
        i += escape_len(b, i);
        bytes += 1;
    }
    (i.min(b.len().saturating_sub(1)), cut_at)
}

/// Length of the one source byte's rendering at `b[i]`: `\"`, `\n`, `\177`,
/// `\0` or a plain character.
fn escape_len(b: &[u8], i: usize) -> usize {
    if b[i] != b'\\' {
        // One character: a multi-byte UTF-8 one stays whole (strace escapes
        // non-ASCII bytes, so this is only defensive).
        let mut n = 1;
        while i + n < b.len() && b[i + n] & 0xc0 == 0x80 {
            n += 1;
        }
        return n;
    }
    let octal = b[i + 1..]
        .iter()
        .take(3)
        .take_while(|c| (b'0'..=b'7').contains(c))
        .count();
    if octal > 0 {
        1 + octal
    } else {
        2.min(b.len() - i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cuts_send_and_recv_data() {
        let a = args(&[
            "3",
            "\"GET / HTTP/1.1\\r\\nHost: 127.0.0.1:\"...",
            "79",
            "MSG_NOSIGNAL",
            "NULL",
            "0",
        ]);
        let cut = cut_args("sendto", &a, 8).unwrap();
        assert_eq!(cut[1], "\"GET / HT\"...");
        assert_eq!(cut[0], "3");
        // Escapes count as one byte each and are never split.
        let cut = cut_args("sendto", &a, 16).unwrap();
        assert_eq!(cut[1], "\"GET / HTTP/1.1\\r\\n\"...");
        let short = args(&["3", "\"abc\"", "3"]);
        assert_eq!(cut_args("recvfrom", &short, 8), None);
        assert_eq!(cut_args("recvfrom", &short, 3), None);
        assert_eq!(cut_args("recvfrom", &short, 2).unwrap()[1], "\"ab\"...");
        let octal = args(&["3", "\"\\0\\1777\\\"x\"", "4"]);
        assert_eq!(cut_args("recvfrom", &octal, 2).unwrap()[1], "\"\\0\\177\"...");
        assert_eq!(cut_args("recvfrom", &octal, 3).unwrap()[1], "\"\\0\\1777\"...");
        assert_eq!(cut_args("recvfrom", &octal, 4).unwrap()[1], "\"\\0\\1777\\\"\"...");
        assert_eq!(cut_args("recvfrom", &args(&["3", "\"\"", "0"]), 0), None);
        assert_eq!(
            cut_args("recvfrom", &args(&["3", "\"a\"", "1"]), 0).unwrap()[1],
            "\"\"..."
        );
    }

    #[test]
    fn cuts_iovs_not_addresses() {
        let msg = "{msg_name={sa_family=AF_UNIX, sun_path=\"/run/some/long.sock\"}, msg_namelen=22, \
                   msg_iov=[{iov_base=\"hello world\", iov_len=11}, {iov_base=\"x\", iov_len=1}], \
                   msg_iovlen=2, msg_controllen=0, msg_flags=0}";
        let a = args(&["3", msg, "0"]);
        let cut = cut_args("sendmsg", &a, 4).unwrap();
        assert!(cut[1].contains("sun_path=\"/run/some/long.sock\""), "{}", cut[1]);
        assert!(cut[1].contains("{iov_base=\"hell\"..., iov_len=11}"), "{}", cut[1]);
        assert!(cut[1].contains("{iov_base=\"x\", iov_len=1}"), "{}", cut[1]);
        let conn = args(&[
            "3",
            "{sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr(\"10.0.0.1\")}",
            "16",
        ]);
        assert_eq!(cut_args("connect", &conn, 2), None);
        assert_eq!(cut_args("sendto", &conn, 2), None);
        let opt = args(&["3", "SOL_TCP", "TCP_CONGESTION", "\"cubic\"", "5"]);
        assert_eq!(cut_args("setsockopt", &opt, 3).unwrap()[3], "\"cub\"...");
    }
}
