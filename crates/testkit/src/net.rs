//! Clients that misbehave on purpose: a connection whose receive buffer is
//! as small as the kernel allows, for a client that stops reading and so
//! leaves the server's writes stuck as soon as possible.

use std::{io, net::SocketAddr};

use tokio::net::{TcpSocket, TcpStream};

/// Connects to `addr` with the smallest receive buffer the kernel allows:
/// once its reader stops reading, the server's socket fills after a few
/// kilobytes.
pub async fn connect_without_reading(addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // Set before connecting, so the window the server sees is small from
    // the handshake on; the kernel rounds it up to its minimum.
    socket.set_recv_buffer_size(1)?;
    socket.connect(addr).await
}
