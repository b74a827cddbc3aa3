//! Outgoing mail: a small SMTP client (RFC 5321) over plain TCP and a MIME message builder
//! (RFC 5322, RFC 2045 quoted-printable, RFC 2047 encoded subjects), enough for account mail
//! such as password-reset links.
//!
//! `CORVID_SMTP_URL=smtp://user:pass@host:port` (port 25 by default) and `CORVID_MAIL_FROM`
//! configure it. The client speaks EHLO, AUTH PLAIN when credentials are given and the server
//! offers it, MAIL FROM, RCPT TO, DATA (dot-stuffed) and QUIT. There is no TLS here: point it
//! at a local relay (or a sidecar) that forwards mail onwards over TLS.

use base64::Engine;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest reply line we read (servers send short lines; this bounds a hostile one).
const MAX_LINE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail is not configured")]
    Disabled,
    #[error("bad SMTP URL: {0}")]
    Config(String),
    #[error("SMTP connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("SMTP server timed out")]
    Timeout,
    #[error("SMTP server refused {stage}: {code} {text}")]
    Refused { stage: &'static str, code: u16, text: String },
    #[error("SMTP server sent a malformed reply")]
    Protocol,
    #[error("invalid address or header: {0}")]
    Header(String),
}

/// Where and how to deliver: parsed from `smtp://[user:pass@]host[:port]`.
#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig").field("host", &self.host).field("port", &self.port).field("user", &self.user).finish_non_exhaustive()
    }
}

fn percent_decode(s: &str) -> Result<String, MailError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or_else(|| MailError::Config("bad %-escape".into()))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| MailError::Config("bad %-escape".into()))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| MailError::Config("credentials are not UTF-8".into()))
}

impl SmtpConfig {
    pub fn parse(url: &str) -> Result<SmtpConfig, MailError> {
        let rest = url
            .strip_prefix("smtp://")
            .ok_or_else(|| MailError::Config("must start with smtp:// (TLS is not built in; use a local relay for smtps)".into()))?;
        let rest = rest.trim_end_matches('/');
        let (creds, hostport) = match rest.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, rest),
        };
        let (user, password) = match creds {
            Some(c) => {
                let (u, p) = c.split_once(':').unwrap_or((c, ""));
                (Some(percent_decode(u)?), Some(percent_decode(p)?))
            }
            None => (None, None),
        };
        // An IPv6 literal is bracketed: [::1]:25.
        let (host, port_text) = match hostport.strip_prefix('[') {
            Some(v6) => {
                let (h, after) = v6.split_once(']').ok_or_else(|| MailError::Config("unclosed [".into()))?;
                (h.to_string(), after.strip_prefix(':'))
            }
            None => match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            },
        };
        let port = match port_text {
            Some(p) => p.parse::<u16>().map_err(|_| MailError::Config(format!("bad port {p:?}")))?,
            None => 25,
        };
        if host.is_empty() {
            return Err(MailError::Config("no host".into()));
        }
        Ok(SmtpConfig { host, port, user: user.filter(|u| !u.is_empty()), password })
    }
}

/// One message to send.
#[derive(Debug, Clone)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// Rejects what could smuggle headers or SMTP commands: line breaks and angle brackets in
/// addresses, line breaks in header text.
fn check_address(a: &str) -> Result<&str, MailError> {
    let a = a.trim();
    if a.is_empty()
        || a.len() > 320
        || !a.contains('@')
        || a.chars().any(|c| c.is_control() || c.is_whitespace() || "<>()[],;:\"".contains(c))
    {
        return Err(MailError::Header(format!("address {:?}", a.chars().take(60).collect::<String>())));
    }
    Ok(a)
}

/// `Name <addr@host>` or `addr@host` → (display header value, bare address).
pub fn parse_mailbox(s: &str) -> Result<(String, String), MailError> {
    let s = s.trim();
    if s.chars().any(|c| c == '\r' || c == '\n') {
        return Err(MailError::Header("line break in address".into()));
    }
    match (s.rfind('<'), s.ends_with('>')) {
        (Some(open), true) => {
            let addr = check_address(&s[open + 1..s.len() - 1])?.to_string();
            let name = s[..open].trim().trim_matches('"');
            if name.is_empty() {
                Ok((format!("<{addr}>"), addr))
            } else {
                Ok((format!("{} <{addr}>", encode_word(name)), addr))
            }
        }
        _ => {
            let addr = check_address(s)?.to_string();
            Ok((addr.clone(), addr))
        }
    }
}

/// RFC 2047: plain ASCII stays as it is; anything else becomes `=?UTF-8?B?…?=` words.
fn encode_word(s: &str) -> String {
    if s.chars().all(|c| (' '..='~').contains(&c)) && !s.contains("=?") {
        return s.to_string();
    }
    // Encoded words are at most 75 characters: 45 bytes of text each, split on char boundaries.
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in s.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(chunk);
    }
    words
        .iter()
        .map(|w| format!("=?UTF-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(w.as_bytes())))
        .collect::<Vec<_>>()
        .join("\r\n ")
}

/// Quoted-printable (RFC 2045 §6.7) with CRLF line ends and soft breaks before 76 columns.
pub fn quoted_printable(text: &str) -> String {
    let mut out = String::new();
    let normalised = text.replace("\r\n", "\n");
    let lines: Vec<&str> = normalised.split('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        let bytes = line.as_bytes();
        let mut col = 0;
        for (j, &b) in bytes.iter().enumerate() {
            let last = j + 1 == bytes.len();
            let literal = matches!(b, 33..=60 | 62..=126) || ((b == b' ' || b == b'\t') && !last);
            let piece = if literal { (b as char).to_string() } else { format!("={b:02X}") };
            if col + piece.len() > 75 {
                out.push_str("=\r\n");
                col = 0;
            }
            col += piece.len();
            out.push_str(&piece);
        }
        if i + 1 < lines.len() {
            out.push_str("\r\n");
        }
    }
    out
}

/// The whole RFC 5322 message: headers and a text part (plus an HTML alternative).
pub fn build_message(from: &str, email: &Email, domain: &str) -> Result<String, MailError> {
    let (from_header, _) = parse_mailbox(from)?;
    let (to_header, _) = parse_mailbox(&email.to)?;
    if email.subject.chars().any(|c| c == '\r' || c == '\n') {
        return Err(MailError::Header("line break in subject".into()));
    }
    let id = uuid::Uuid::now_v7().simple();
    let mut m = String::new();
    m.push_str(&format!("Date: {}\r\n", chrono::Utc::now().to_rfc2822()));
    m.push_str(&format!("From: {from_header}\r\n"));
    m.push_str(&format!("To: {to_header}\r\n"));
    m.push_str(&format!("Subject: {}\r\n", encode_word(&email.subject)));
    m.push_str(&format!("Message-ID: <{id}@{domain}>\r\n"));
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str("Auto-Submitted: auto-generated\r\n");
    let part = |ct: &str, body: &str| {
        format!("Content-Type: {ct}; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}\r\n", quoted_printable(body))
    };
    match &email.html {
        None => {
            m.push_str(&part("text/plain", &email.text));
        }
        Some(html) => {
            let boundary = format!("=_corvid_{id}");
            m.push_str(&format!("Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n"));
            m.push_str("This is a message in MIME format.\r\n");
            m.push_str(&format!("--{boundary}\r\n{}", part("text/plain", &email.text)));
            m.push_str(&format!("--{boundary}\r\n{}", part("text/html", html)));
            m.push_str(&format!("--{boundary}--\r\n"));
        }
    }
    Ok(m)
}

/// An SMTP conversation.
struct Conn {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Conn {
    /// Reads one (possibly multi-line) reply: its code and the text of every line.
    async fn reply(&mut self) -> Result<(u16, Vec<String>), MailError> {
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = tokio::time::timeout(REPLY_TIMEOUT, async {
                let mut total = 0;
                loop {
                    let buf = self.reader.fill_buf().await?;
                    if buf.is_empty() {
                        return Ok::<usize, std::io::Error>(total);
                    }
                    let (take, done) = match buf.iter().position(|&b| b == b'\n') {
                        Some(p) => (p + 1, true),
                        None => (buf.len(), false),
                    };
                    if line.len() + take <= MAX_LINE {
                        line.extend_from_slice(&buf[..take]);
                    }
                    self.reader.consume(take);
                    total += take;
                    if done {
                        return Ok(total);
                    }
                }
            })
            .await
            .map_err(|_| MailError::Timeout)??;
            if n == 0 {
                return Err(MailError::Protocol);
            }
            let text = String::from_utf8_lossy(&line).trim_end().to_string();
            let code = text.get(..3).and_then(|c| c.parse::<u16>().ok()).ok_or(MailError::Protocol)?;
            let more = text.as_bytes().get(3) == Some(&b'-');
            lines.push(text.get(4..).unwrap_or("").to_string());
            if !more {
                return Ok((code, lines));
            }
        }
    }

    async fn send(&mut self, line: &str) -> Result<(), MailError> {
        tokio::time::timeout(REPLY_TIMEOUT, self.writer.write_all(line.as_bytes())).await.map_err(|_| MailError::Timeout)??;
        Ok(())
    }

    /// Sends a command and expects a reply in `ok`.
    async fn command(&mut self, stage: &'static str, line: &str, ok: &[u16]) -> Result<Vec<String>, MailError> {
        self.send(line).await?;
        let (code, text) = self.reply().await?;
        if !ok.contains(&code) {
            return Err(MailError::Refused { stage, code, text: text.join(" ").chars().take(300).collect() });
        }
        Ok(text)
    }
}

/// Delivers one message by SMTP.
pub async fn send_smtp(cfg: &SmtpConfig, helo: &str, from: &str, email: &Email) -> Result<(), MailError> {
    let (_, from_addr) = parse_mailbox(from)?;
    let (_, to_addr) = parse_mailbox(&email.to)?;
    let domain = from_addr.rsplit('@').next().unwrap_or("localhost").to_string();
    let message = build_message(from, email, &domain)?;
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((cfg.host.as_str(), cfg.port)))
        .await
        .map_err(|_| MailError::Timeout)??;
    let (r, w) = stream.into_split();
    let mut c = Conn { reader: BufReader::new(r), writer: w };
    let (code, text) = c.reply().await?;
    if code != 220 {
        return Err(MailError::Refused { stage: "the connection", code, text: text.join(" ") });
    }
    let ehlo = c.command("EHLO", &format!("EHLO {helo}\r\n"), &[250]).await?;
    if let (Some(user), Some(pass)) = (&cfg.user, &cfg.password) {
        let offers_plain = ehlo.iter().any(|l| {
            let l = l.to_ascii_uppercase();
            l.starts_with("AUTH") && l.split([' ', '=']).any(|m| m == "PLAIN")
        });
        if !offers_plain {
            return Err(MailError::Refused { stage: "AUTH", code: 504, text: "the server does not offer AUTH PLAIN".into() });
        }
        let creds = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pass}"));
        c.command("AUTH", &format!("AUTH PLAIN {creds}\r\n"), &[235]).await?;
    }
    c.command("MAIL FROM", &format!("MAIL FROM:<{from_addr}>\r\n"), &[250]).await?;
    c.command("RCPT TO", &format!("RCPT TO:<{to_addr}>\r\n"), &[250, 251]).await?;
    c.command("DATA", "DATA\r\n", &[354]).await?;
    // Dot-stuffing: a line starting with "." gets another, so it cannot end the data early.
    let mut data = String::with_capacity(message.len() + 16);
    for line in message.split("\r\n") {
        if line.starts_with('.') {
            data.push('.');
        }
        data.push_str(line);
        data.push_str("\r\n");
    }
    while data.ends_with("\r\n\r\n") {
        data.truncate(data.len() - 2);
    }
    data.push_str(".\r\n");
    c.command("the message", &data, &[250]).await?;
    // The message is accepted; a failed goodbye does not matter.
    let _ = c.command("QUIT", "QUIT\r\n", &[221]).await;
    Ok(())
}

/// The mail settings of the app.
#[derive(Debug, Clone)]
pub struct Mailer {
    pub smtp: Option<SmtpConfig>,
    /// `From:` of account mail, e.g. `Corvid <crm@example.com>`.
    pub from: String,
    /// Demo mode: with no SMTP, links that would be mailed are written to the server log.
    pub demo: bool,
}

impl Default for Mailer {
    fn default() -> Self {
        Mailer { smtp: None, from: "Corvid <corvid@localhost>".into(), demo: false }
    }
}

impl Mailer {
    pub fn enabled(&self) -> bool {
        self.smtp.is_some()
    }

    pub async fn send(&self, email: &Email) -> Result<(), MailError> {
        let Some(cfg) = &self.smtp else { return Err(MailError::Disabled) };
        let (_, from_addr) = parse_mailbox(&self.from)?;
        let helo = from_addr.rsplit('@').next().unwrap_or("localhost").to_string();
        send_smtp(cfg, &helo, &self.from, email).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_smtp_urls() {
        let c = SmtpConfig::parse("smtp://me%40x.com:p%3Ass@mail.example.com:2525").expect("url");
        assert_eq!((c.host.as_str(), c.port), ("mail.example.com", 2525));
        assert_eq!((c.user.as_deref(), c.password.as_deref()), (Some("me@x.com"), Some("p:ss")));
        let c = SmtpConfig::parse("smtp://localhost").expect("url");
        assert_eq!((c.host.as_str(), c.port, c.user), ("localhost", 25, None));
        assert_eq!(SmtpConfig::parse("smtp://[::1]").expect("ipv6").port, 25);
        let c = SmtpConfig::parse("smtp://[::1]:1025").expect("ipv6");
        assert_eq!((c.host.as_str(), c.port), ("::1", 1025));
        for bad in ["smtps://x", "http://x", "smtp://", "smtp://h:notaport", "smtp://u:%zz@h"] {
            assert!(SmtpConfig::parse(bad).is_err(), "{bad}");
        }
        assert!(!format!("{:?}", SmtpConfig::parse("smtp://u:topsecret@h").expect("url")).contains("topsecret"));
    }

    #[test]
    fn quoted_printable_round_trips_and_wraps() {
        let text = format!("Hello = world\nnaïve café \n{}\n.dot", "x".repeat(200));
        let qp = quoted_printable(&text);
        assert!(qp.lines().all(|l| l.len() <= 76), "{qp}");
        assert!(qp.contains("=3D") && qp.contains("na=C3=AFve") && qp.contains("caf=C3=A9=20\r\n"));
        // Decode: drop soft breaks, then =XX.
        let joined = qp.replace("=\r\n", "");
        let mut out = Vec::new();
        let b = joined.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'=' {
                out.push(u8::from_str_radix(&joined[i + 1..i + 3], 16).expect("hex"));
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        assert_eq!(String::from_utf8(out).expect("utf8").replace("\r\n", "\n"), text);
    }

    #[test]
    fn headers_cannot_be_injected() {
        let mail = |to: &str, subject: &str| Email { to: to.into(), subject: subject.into(), text: "hi".into(), html: None };
        assert!(build_message("Corvid <c@x.com>", &mail("a@b.com", "Hi"), "x.com").is_ok());
        assert!(build_message("Corvid <c@x.com>", &mail("a@b.com\r\nBcc: e@vil.com", "Hi"), "x.com").is_err());
        assert!(build_message("Corvid <c@x.com>", &mail("a@b.com", "Hi\r\nBcc: e@vil.com"), "x.com").is_err());
        assert!(build_message("Corvid <c@x.com>", &mail("<a@b.com>\nX: y", "Hi"), "x.com").is_err());
        assert!(build_message("Corvid <c@x.com>", &mail("a@b.com>", "Hi"), "x.com").is_err());
        let m = build_message("Córvid <c@x.com>", &mail("a@b.com", "Réinitialiser"), "x.com").expect("message");
        assert!(m.contains("Subject: =?UTF-8?B?") && m.contains("From: =?UTF-8?B?"));
    }
}
