//! Servers the tests start as processes of their own (moto, the registry, Prism, Prometheus,
//! `http.server`) on a free loopback port, waited for until *that process* listens there.
//!
//! A port is chosen by binding port 0 and letting it go; the server binds it a moment (for
//! moto, a second or two of Python imports) later. In that window anything else on the
//! machine may take the same port: another test's proxy or stub, another server starting.
//! Waiting for "something answers on the port" then hands the test another server (one CI
//! run set up a second moto world over a first one, `DuplicateTargetGroupName`). So the wait
//! here asks the kernel which process listens (Linux `/proc`), and a server that lost its
//! port (it exits) is started again on another one.

use std::process::Child;
use std::time::{Duration, Instant};

/// A port on 127.0.0.1 that nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a server with `spawn(port)` on a free port and waits, up to `timeout`, until the
/// child (or a process it started) listens on 127.0.0.1:port; a child that exits first (its
/// port was taken in between) is started again on another port, up to 5 times.
pub fn spawn_listening(
    what: &str,
    timeout: Duration,
    spawn: impl FnMut(u16) -> Child,
) -> (Child, u16) {
    spawn_listening_on(std::iter::repeat_with(free_port), what, timeout, spawn)
}

/// [`spawn_listening`] trying the ports `ports` gives, in turn (a test hands it a taken one).
pub fn spawn_listening_on(
    ports: impl IntoIterator<Item = u16>,
    what: &str,
    timeout: Duration,
    mut spawn: impl FnMut(u16) -> Child,
) -> (Child, u16) {
    for port in ports.into_iter().take(5) {
        let mut child = spawn(port);
        let deadline = Instant::now() + timeout;
        loop {
            if listens(child.id(), port) {
                return (child, port);
            }
            if let Ok(Some(status)) = child.try_wait() {
                eprintln!(
                    "{what} exited ({status}) before it listened on port {port}: again on another port"
                );
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{what} did not listen on 127.0.0.1:{port} within {} s",
                    timeout.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("{what} exited before it listened, on each of the ports tried");
}

/// Whether `pid` or one of its descendants holds a socket listening on 127.0.0.1:`port`.
pub fn listens(pid: u32, port: u16) -> bool {
    let Some(inode) = listening_inode(port) else {
        return false;
    };
    let socket = format!("socket:[{inode}]");
    let mut family = vec![pid];
    let mut i = 0;
    while i < family.len() {
        let p = family[i];
        if let Ok(fds) = std::fs::read_dir(format!("/proc/{p}/fd"))
            && fds.flatten().any(|fd| {
                std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == socket.as_str())
            })
        {
            return true;
        }
        family.extend(children(p));
        i += 1;
    }
    false
}

/// The inode of the socket in state LISTEN on 127.0.0.1:`port` (`/proc/net/tcp`).
fn listening_inode(port: u16) -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"0A"))
            .then(|| fields.get(9).map(|s| (*s).to_owned()))
            .flatten()
    })
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|stat| {
                // `pid (comm) state ppid …`: comm may hold spaces and parentheses.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    == Some(pid)
            })
        })
        .collect()
}
