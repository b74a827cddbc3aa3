//! Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP): HMAC-SHA-1, 30-second
//! steps, 6 digits, accepting the previous and next step for clock drift. Pure functions;
//! the store remembers the last accepted step so a code cannot be used twice.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;

pub const STEP_SECS: i64 = 30;
pub const DIGITS: u32 = 6;
/// Steps accepted either side of now.
pub const WINDOW: i64 = 1;
const ISSUER: &str = "Corvid";

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding (what authenticator apps expect in `otpauth://`).
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(B32[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(B32[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Decodes base32, ignoring case, spaces and padding. `None` for other characters.
pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let v = B32.iter().position(|&x| x as char == c.to_ascii_uppercase())? as u32;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buf >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// A new 160-bit secret, base32-encoded.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 20];
    rand::thread_rng().fill_bytes(&mut bytes);
    base32_encode(&bytes)
}

/// RFC 4226 HOTP value for a counter, with `digits` digits.
pub fn hotp(key: &[u8], counter: u64, digits: u32) -> u32 {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = (h[19] & 0x0f) as usize;
    let bin =
        (u32::from(h[offset]) & 0x7f) << 24 | u32::from(h[offset + 1]) << 16 | u32::from(h[offset + 2]) << 8 | u32::from(h[offset + 3]);
    bin % 10u32.pow(digits)
}

/// The time step of a Unix time.
pub fn step_of(unix: i64) -> i64 {
    unix.div_euclid(STEP_SECS)
}

/// The code for a step, zero-padded.
pub fn code_at(key: &[u8], step: i64) -> String {
    format!("{:0width$}", hotp(key, step.max(0) as u64, DIGITS), width = DIGITS as usize)
}

/// Checks a typed code against the steps around `unix`; returns the matching step. Spaces
/// are ignored; anything but six digits fails. Every candidate is compared, so the time
/// taken does not say which step matched.
pub fn verify(secret_b32: &str, code: &str, unix: i64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let key = base32_decode(secret_b32)?;
    let now = step_of(unix);
    let mut found = None;
    for step in (now - WINDOW)..=(now + WINDOW) {
        let expected = code_at(&key, step);
        let same = expected.bytes().zip(code.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if same && found.is_none() {
            found = Some(step);
        }
    }
    found
}

fn uri_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The `otpauth://` URI authenticator apps import (as text or a QR code).
pub fn otpauth_uri(account: &str, secret_b32: &str) -> String {
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret_b32}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        issuer = uri_escape(ISSUER),
        account = uri_escape(account),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 column: the seed is the ASCII string "12345678901234567890".
    #[test]
    fn rfc6238_sha1_vectors() {
        let key = b"12345678901234567890";
        let cases: &[(i64, u32)] = &[
            (59, 94287082),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ];
        for &(t, expected) in cases {
            assert_eq!(hotp(key, step_of(t) as u64, 8), expected, "T = {t}");
            // Six digits are the last six of the eight.
            assert_eq!(code_at(key, step_of(t)), format!("{:06}", expected % 1_000_000), "T = {t}");
        }
    }

    /// RFC 4226 appendix D: HOTP values for counters 0..9.
    #[test]
    fn rfc4226_hotp_vectors() {
        let expected = [755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489];
        for (c, e) in expected.iter().enumerate() {
            assert_eq!(hotp(b"12345678901234567890", c as u64, 6), *e);
        }
    }

    #[test]
    fn base32_round_trip() {
        assert_eq!(base32_encode(b"12345678901234567890"), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(base32_decode("gezd gnbv gy3t qojq gezdgnbvgy3tqojq").as_deref(), Some(&b"12345678901234567890"[..]));
        assert_eq!(base32_encode(b"f"), "MY");
        assert_eq!(base32_decode("MY======").as_deref(), Some(&b"f"[..]));
        assert_eq!(base32_decode("M1"), None);
        let s = new_secret();
        assert_eq!(s.len(), 32);
        assert_eq!(base32_decode(&s).map(|b| b.len()), Some(20));
    }

    #[test]
    fn verify_accepts_one_step_either_side_only() {
        let secret = base32_encode(b"12345678901234567890");
        let t = 1111111111;
        let key = b"12345678901234567890";
        let now = step_of(t);
        assert_eq!(verify(&secret, &code_at(key, now), t), Some(now));
        assert_eq!(verify(&secret, &code_at(key, now - 1), t), Some(now - 1));
        assert_eq!(verify(&secret, &code_at(key, now + 1), t), Some(now + 1));
        assert_eq!(verify(&secret, &code_at(key, now - 2), t), None);
        assert_eq!(verify(&secret, &code_at(key, now + 2), t), None);
        let spaced = format!("{} {}", &code_at(key, now)[..3], &code_at(key, now)[3..]);
        assert_eq!(verify(&secret, &spaced, t), Some(now));
        for bad in ["", "12345", "1234567", "abcdef", "١٢٣٤٥٦", "050471\n1"] {
            assert_eq!(verify(&secret, bad, t), None, "{bad:?}");
        }
    }

    #[test]
    fn otpauth_uri_is_escaped() {
        let uri = otpauth_uri("a+b@example.com", "ABC");
        assert_eq!(uri, "otpauth://totp/Corvid:a%2Bb%40example.com?secret=ABC&issuer=Corvid&algorithm=SHA1&digits=6&period=30");
    }
}
