//! Reading HTTP/1.1 requests off a socket, and serving connections, for the test components
//! that stand in for a server or between the binary and one (the fakes of GitHub and Datadog,
//! the probe server, the `CodeDeploy` scenario proxy, the benches' counting proxy).
#![allow(dead_code)]

/// One request: its line, headers (as sent) and body (by `Content-Length`).
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub fn read_request(reader: &mut impl std::io::BufRead) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    let mut length = 0;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
            headers.push((k.to_owned(), v.trim().to_owned()));
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

/// Listens on a free loopback port and serves each connection on a thread of its own with
/// `handle`; the base URL (`http://127.0.0.1:PORT`).
pub fn serve_each(handle: impl Fn(std::net::TcpStream) + Send + Sync + 'static) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::sync::Arc::new(handle);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let handle = handle.clone();
            std::thread::spawn(move || handle(stream));
        }
    });
    url
}

/// A fault a [`fault_proxy`] answers instead of its upstream: the next `times` requests whose
/// method is `method` and whose path contains `path` get `status` with `body`; status 0
/// closes the connection unanswered (a reset).
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: &'static str,
    pub path: &'static str,
    pub status: u16,
    pub body: &'static str,
    pub times: u32,
    /// Matching requests let through before the fault starts.
    pub after: u32,
}

pub type Faults = std::sync::Arc<std::sync::Mutex<Vec<Fault>>>;

/// A fault-injecting proxy in front of a plain HTTP server at `upstream`
/// (`http://127.0.0.1:PORT`): each request not answered by a fault is sent on as HTTP/1.0 and
/// its answer relayed whole, with `Connection: close`. The proxy's base URL.
pub fn fault_proxy(upstream: &str, faults: Faults) -> String {
    use std::fmt::Write as _;
    use std::io::{Read as _, Write as _};
    let upstream = upstream
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    serve_each(move |mut out| {
        let mut reader = std::io::BufReader::new(out.try_clone().unwrap());
        let Some(request) = read_request(&mut reader) else {
            return;
        };
        let injected = {
            let mut faults = faults.lock().unwrap();
            faults
                .iter_mut()
                .position(|f| {
                    if f.times == 0 || f.method != request.method || !request.path.contains(f.path)
                    {
                        return false;
                    }
                    if f.after > 0 {
                        f.after -= 1;
                        return false;
                    }
                    true
                })
                .map(|i| {
                    faults[i].times -= 1;
                    faults[i].clone()
                })
        };
        if let Some(f) = injected {
            if f.status != 0 {
                let _ = write!(
                    out,
                    "HTTP/1.1 {} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                    f.status,
                    f.body.len(),
                    f.body
                );
            }
            let _ = out.shutdown(std::net::Shutdown::Both);
            return;
        }
        let Ok(mut up) = std::net::TcpStream::connect(&upstream) else {
            return;
        };
        let mut head = format!(
            "{} {} HTTP/1.0\r\nHost: {upstream}\r\n",
            request.method, request.path
        );
        for (k, v) in &request.headers {
            if !["host", "connection", "content-length"].contains(&k.to_ascii_lowercase().as_str())
            {
                let _ = write!(head, "{k}: {v}\r\n");
            }
        }
        let _ = write!(head, "Content-Length: {}\r\n\r\n", request.body.len());
        if up
            .write_all(head.as_bytes())
            .and_then(|()| up.write_all(&request.body))
            .is_err()
        {
            return;
        }
        // The head, then the body by its Content-Length (a server may keep the connection
        // open after it), or to the end.
        let mut up = std::io::BufReader::new(up);
        let mut text = String::new();
        let mut length = None;
        loop {
            let mut line = String::new();
            if std::io::BufRead::read_line(&mut up, &mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse::<usize>().ok();
            }
            text.push_str(&line);
        }
        let text = text.trim_end().to_owned();
        let mut body = Vec::new();
        match length {
            Some(n) => {
                body.resize(n, 0);
                if up.read_exact(&mut body).is_err() {
                    return;
                }
            }
            None => {
                let _ = up.read_to_end(&mut body);
            }
        }
        let body = &body[..];
        let mut lines = text.split("\r\n");
        let mut relayed = format!("{}\r\n", lines.next().unwrap_or("HTTP/1.1 502 Bad Gateway"));
        for l in lines {
            let name = l.split(':').next().unwrap_or("").to_ascii_lowercase();
            if !["connection", "content-length", "transfer-encoding"].contains(&name.as_str()) {
                relayed.push_str(l);
                relayed.push_str("\r\n");
            }
        }
        let _ = write!(
            relayed,
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = out
            .write_all(relayed.as_bytes())
            .and_then(|()| out.write_all(body));
        let _ = out.shutdown(std::net::Shutdown::Both);
    })
}
