//! Binding one address once per I/O thread (SO_REUSEPORT): each thread
//! accepts on its own socket and the kernel spreads connections between them,
//! so a connection's whole life stays on one thread.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

fn one(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    #[cfg(unix)]
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

/// `n` listening sockets on `addr`. With port 0, all share the port the
/// first one got.
pub fn bind_shared(addr: SocketAddr, n: usize) -> io::Result<Vec<TcpListener>> {
    let first = one(addr)?;
    let actual = first.local_addr()?;
    let mut out = vec![first];
    for _ in 1..n.max(1) {
        out.push(one(actual)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_share_one_port() {
        let socks = bind_shared("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let ports: Vec<u16> = socks
            .iter()
            .map(|s| s.local_addr().unwrap().port())
            .collect();
        assert_eq!(ports.len(), 3);
        assert!(ports.iter().all(|p| *p == ports[0] && *p != 0));
    }

    #[test]
    fn a_taken_port_is_an_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(bind_shared(taken.local_addr().unwrap(), 2).is_err());
    }
}
