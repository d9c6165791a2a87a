//! What to say when a port cannot be bound because something already holds it.

use std::io;
use std::net::SocketAddr;

/// "cannot listen on ADDR: ERR", plus, when the address is in use, what usually holds the
/// agent port and the command that shows it.
pub fn cannot_listen(what: &str, addr: SocketAddr, err: &io::Error) -> String {
    let mut message = format!("{what} {addr}: {err}");
    if err.kind() == io::ErrorKind::AddrInUse {
        let port = addr.port();
        message.push_str(&format!(
            "; something already listens on port {port}: usually xinetd (/etc/xinetd.d/lb-feedback), \
             the socket unit lb-feedback.socket, or another lb-feedback-service; \
             `ss -ltnp 'sport = :{port}'` shows which (run only one of them)"
        ));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_in_use_names_the_usual_holders_and_the_check() {
        let addr: SocketAddr = "0.0.0.0:3333".parse().unwrap();
        let err = io::Error::from(io::ErrorKind::AddrInUse);
        let message = cannot_listen("cannot listen on", addr, &err);
        assert!(
            message.starts_with("cannot listen on 0.0.0.0:3333: "),
            "{message}"
        );
        for part in ["xinetd", "lb-feedback.socket", "ss -ltnp 'sport = :3333'"] {
            assert!(message.contains(part), "{message}");
        }
    }

    #[test]
    fn other_errors_get_no_hint() {
        let addr: SocketAddr = "192.0.2.1:3333".parse().unwrap();
        let err = io::Error::from(io::ErrorKind::AddrNotAvailable);
        let message = cannot_listen("cannot listen on", addr, &err);
        assert!(!message.contains("xinetd"), "{message}");
    }
}
