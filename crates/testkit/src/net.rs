//! Clients that misbehave on purpose: a connection with a small receive
//! buffer, for a client that stops reading and so leaves the server's
//! writes stuck as soon as possible, and a way to see, without reading,
//! that the server reset it.

use std::{io, net::SocketAddr};

use tokio::net::{TcpSocket, TcpStream};

/// Connects to `addr` with the smallest receive buffer the kernel allows:
/// once its reader stops reading, the server's socket fills after a few
/// kilobytes.
pub async fn connect_without_reading(addr: SocketAddr) -> io::Result<TcpStream> {
    connect_with_receive_buffer(addr, 1).await
}

/// Connects to `addr` with `SO_RCVBUF` set to `bytes` (the kernel doubles
/// it, and rounds it up to its minimum), as a client with a small buffer
/// that stops reading has it.
pub async fn connect_with_receive_buffer(addr: SocketAddr, bytes: u32) -> io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // Set before connecting, so the window the server sees is small from
    // the handshake on.
    socket.set_recv_buffer_size(bytes)?;
    socket.connect(addr).await
}

/// Whether the peer has reset `stream`, seen without reading anything it
/// sent: the socket's pending error is then `ConnectionReset`. Bytes
/// still unread come before a reset for a reader, and a peer's orderly
/// close (FIN) comes after them, so only a reset reaches a client that
/// stopped reading while its buffer is full.
///
/// Takes the pending error: once this returned `true`, call it no more.
pub fn was_reset(stream: &TcpStream) -> io::Result<bool> {
    match stream.take_error()? {
        None => Ok(false),
        Some(err) if err.kind() == io::ErrorKind::ConnectionReset => Ok(true),
        Some(err) => Err(err),
    }
}
