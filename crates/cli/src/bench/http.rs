//! A minimal HTTP/1.1 keep-alive client for the benchmark: one connection per simulated user,
//! so the measured time is the server's, not a client library's.

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub struct Client {
    stream: BufReader<TcpStream>,
    host: String,
    auth: String,
}

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Client {
    pub async fn connect(addr: std::net::SocketAddr, token: &str) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Client { stream: BufReader::with_capacity(64 * 1024, stream), host: addr.to_string(), auth: format!("Bearer {token}") })
    }

    pub async fn get(&mut self, path: &str) -> anyhow::Result<Response> {
        self.send("GET", path, None).await
    }

    pub async fn post_json(&mut self, path: &str, body: &[u8]) -> anyhow::Result<Response> {
        self.send("POST", path, Some(body)).await
    }

    async fn send(&mut self, method: &str, path: &str, body: Option<&[u8]>) -> anyhow::Result<Response> {
        let mut req =
            format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nUser-Agent: corvid-bench\r\n", self.host, self.auth);
        if let Some(b) = body {
            req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        if let Some(b) = body {
            bytes.extend_from_slice(b);
        }
        self.stream.get_mut().write_all(&bytes).await?;
        self.read_response().await
    }

    async fn read_response(&mut self) -> anyhow::Result<Response> {
        let mut head = Vec::with_capacity(512);
        loop {
            let b = self.stream.read_u8().await.context("connection closed")?;
            head.push(b);
            if head.ends_with(b"\r\n\r\n") {
                break;
            }
            if head.len() > 64 * 1024 {
                bail!("response head too large");
            }
        }
        let text = String::from_utf8_lossy(&head);
        let mut lines = text.split("\r\n");
        let status: u16 = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).context("bad status line")?;
        let mut length: Option<usize> = None;
        let mut chunked = false;
        for l in lines {
            if let Some((k, v)) = l.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                if k == "content-length" {
                    length = v.trim().parse().ok();
                } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                    chunked = true;
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let mut line = Vec::new();
                loop {
                    let b = self.stream.read_u8().await?;
                    line.push(b);
                    if line.ends_with(b"\r\n") {
                        break;
                    }
                }
                let size = usize::from_str_radix(String::from_utf8_lossy(&line).trim().split(';').next().unwrap_or("0"), 16)?;
                let mut chunk = vec![0u8; size + 2];
                self.stream.read_exact(&mut chunk).await?;
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else if let Some(n) = length {
            body.resize(n, 0);
            self.stream.read_exact(&mut body).await?;
        }
        Ok(Response { status, body })
    }
}
