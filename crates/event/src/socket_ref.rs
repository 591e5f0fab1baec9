//! A plain socket named across layers: reconstruction finds what a socket carries, the live
//! collector tells the kernel about that socket, and both must mean the same one even when the
//! process has closed it and opened another on the same fd number since.

/// A process's plain socket: its pid, its fd, and the kernel's id of it (the payloads'
/// `conn_id`: boot-time ns of its connect or accept), which tells it from a later socket on
/// the same fd. Id 0 is a socket the kernel saw no connect or accept of: it names no socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SocketRef {
    pub pid: u32,
    pub fd: i32,
    pub id: u64,
}
